"""The sealed readout (readout spec version 4): authenticated encryption of the permuted codes at the ADC output.

The keyed readout moves codes and changes none, so a measurement keeps its frame's multiset of codes:
its histogram, its brightness, and whatever a classifier can learn from sorted codes. A sealed spec
(``seal`` = ``aes-256-gcm`` or ``chacha20-poly1305``) encrypts the readout's output stream with an AEAD
from ``cryptography``, so what leaves the sensor is indistinguishable from random bytes to anyone
without the key, and any change to it, or to its header, is detected.

Keys and nonces. Every sensor start draws a 128-bit run identifier from the operating system's
CSPRNG (``os.urandom``: the sensor's TRNG). The sealing key is a key of the existing HKDF schedule::

    K = HKDF(master, info = "keycam/1/seal/{aead}/epoch/{E}/run/{run hex}")        # keys.seal_info

and the 96-bit nonce is the frame's counter within the run (0, 1, 2, ... big-endian). A nonce is
never repeated under a key: within a run the counter only grows, and a new run (a restart, a reboot,
a crash at any point) has a new key, because two runs share a key only if their 128-bit random
identifiers collide (probability about n^2 / 2^129 over n runs). Nothing is persisted, so nothing
can be rolled back. The run identifier is public: it travels in the header.

The header, bound as the AEAD's associated data (so it cannot be changed without the tag failing)::

    "keycam-seal/1" | run (16) | counter (u64) | epoch (u64) | sequence (u64) | capture time (i64, ns)
    | height, width, channels (u32 each) | key fingerprint (20, ASCII) | spec digest (32) | masks digest (20)

(integers big-endian; the fingerprint and masks digest ASCII, zero-padded; the spec digest is SHA-256
of the spec's JSON). The plaintext is the measurement as the readout streams it: its codes in readout
order, channel-minor, each code little-endian (one byte for 8-bit codes, two otherwise); the
ciphertext has the same length and is laid out in the measurement's array, shape and dtype. The 16-byte
tag travels beside it (``Sealed``).

``seal_stream`` is the hardware's view (AES-256-GCM as a keystream core updated one readout step at a
time, the tag over the frame); ``seal``/``open_sealed`` are the same AEAD in one call, which is what the
device runs. Opening checks the tag; a failure is a :class:`FrameError` and the frame is never used.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from firmware_sim.errors import FrameError
from firmware_sim.keys import MasterKey
from firmware_sim.spec import ReadoutSpec

AEADS = ("aes-256-gcm", "chacha20-poly1305")
MAGIC = b"keycam-seal/1"
RUN_BYTES, TAG_BYTES, NONCE_BYTES = 16, 16, 12
_HEADER = struct.Struct(">13s16sQQQqIII20s32s20s")


@dataclass(frozen=True)
class SealHeader:
    """What a sealed frame says about itself in the clear, authenticated by its tag."""

    run: bytes  # 16 random bytes drawn when the sensor started
    counter: int  # the frame's place in the run: its nonce
    epoch: int
    sequence: int
    timestamp_ns: int
    shape: tuple[int, int, int]  # (H, W, C) of the measurement
    fingerprint: str  # the key's, kc1:...
    spec_digest: bytes  # SHA-256 of the spec's JSON
    masks: str = ""  # the privacy masks' digest, "" for none

    def associated_data(self) -> bytes:
        height, width, channels = self.shape
        return _HEADER.pack(MAGIC, self.run, self.counter, self.epoch, self.sequence, self.timestamp_ns, height,
                            width, channels, self.fingerprint.encode("ascii"), self.spec_digest,
                            self.masks.encode("ascii"))

    @property
    def nonce(self) -> bytes:
        return b"\0" * (NONCE_BYTES - 8) + struct.pack(">Q", self.counter)

    @classmethod
    def parse(cls, data: bytes) -> SealHeader:
        """The header a sealed frame carries (its associated data, as :meth:`associated_data` wrote it)."""
        if not isinstance(data, (bytes, bytearray)) or len(data) != _HEADER.size:
            raise FrameError(f"a seal's header is {_HEADER.size} bytes, got "
                             f"{len(data) if isinstance(data, (bytes, bytearray)) else type(data).__name__}")
        (magic, run, counter, epoch, sequence, stamp, height, width, channels, fingerprint, digest,
         masks) = _HEADER.unpack(bytes(data))
        if magic != MAGIC:
            raise FrameError(f"a seal's header starts {magic!r}, not {MAGIC!r}: not a keycam seal")
        try:
            return cls(run, counter, epoch, sequence, stamp, (height, width, channels),
                       fingerprint.rstrip(b"\0").decode("ascii"), digest, masks.rstrip(b"\0").decode("ascii"))
        except UnicodeDecodeError:
            raise FrameError("a seal's header holds a fingerprint or masks digest that is not ASCII") from None


@dataclass(frozen=True)
class Sealed:
    """A sealed measurement: the ciphertext (the measurement's shape and dtype), its tag and its header."""

    data: np.ndarray
    tag: bytes
    header: SealHeader


def spec_digest(spec: ReadoutSpec) -> bytes:
    return hashlib.sha256(spec.model_dump_json().encode()).digest()


def cipher(spec: ReadoutSpec, key: MasterKey, epoch: int, run: bytes) -> AESGCM | ChaCha20Poly1305:
    """The AEAD of one key epoch and sensor run (its key derived once: a device keeps it for the run's frames)."""
    if spec.seal not in AEADS:
        raise FrameError(f"readout spec {spec.describe()} is not sealed (seal = {spec.seal!r}); use a sealed preset")
    secret = key.seal_key(spec.seal, epoch, run)
    return AESGCM(secret) if spec.seal == "aes-256-gcm" else ChaCha20Poly1305(secret)


def _plaintext(codes: np.ndarray) -> np.ndarray:
    """The codes as the readout streams them: little-endian, readout order, as a buffer the AEAD reads in place
    (no copy of a contiguous frame on a little-endian machine)."""
    return np.ascontiguousarray(codes, dtype=codes.dtype.newbyteorder("<")).reshape(-1).view(np.uint8)


def _with_tag(data: np.ndarray, tag: bytes) -> np.ndarray:
    """The ciphertext and its tag in one buffer, as the AEAD opens them (one copy of the frame)."""
    plain = _plaintext(data)
    joined = np.empty(plain.size + len(tag), np.uint8)  # (N + 16,)
    joined[:plain.size] = plain
    joined[plain.size:] = np.frombuffer(tag, np.uint8)
    return joined


def _codes_of(data: bytes, like: np.ndarray) -> np.ndarray:
    """Little-endian bytes back as codes of ``like``'s shape and dtype (a view of ``data`` where the machine is
    little-endian)."""
    codes = np.frombuffer(data, dtype=like.dtype.newbyteorder("<"), count=like.size)
    if codes.dtype != like.dtype:  # a big-endian machine: to its own byte order
        codes = codes.astype(like.dtype)
    return codes.reshape(like.shape)


def _check(codes: np.ndarray, spec: ReadoutSpec, header: SealHeader) -> None:
    if not isinstance(codes, np.ndarray) or codes.dtype != spec.output_dtype or codes.shape != header.shape:
        raise FrameError(f"a sealed measurement is {header.shape} {spec.output_dtype}, got "
                         f"{getattr(codes, 'shape', type(codes).__name__)} {getattr(codes, 'dtype', '')}")


def seal(codes: np.ndarray, key: MasterKey, spec: ReadoutSpec, header: SealHeader, aead=None) -> Sealed:
    """The measurement ``codes`` (H, W, C) sealed under ``header`` (one AEAD call; ``aead``: :func:`cipher`'s for
    the header's epoch and run, when the caller keeps it)."""
    _check(codes, spec, header)
    aead = aead or cipher(spec, key, header.epoch, header.run)
    out = aead.encrypt(header.nonce, _plaintext(codes), header.associated_data())
    return Sealed(_codes_of(out, codes), out[-TAG_BYTES:], header)


def open_sealed(sealed: Sealed, key: MasterKey, spec: ReadoutSpec, aead=None) -> np.ndarray:
    """The measurement inside ``sealed``; FrameError when its tag fails (a changed byte, header, key or spec)."""
    _check(sealed.data, spec, sealed.header)
    if len(sealed.tag) != TAG_BYTES:
        raise FrameError(f"a seal's tag is {TAG_BYTES} bytes, got {len(sealed.tag)}")
    try:
        aead = aead or cipher(spec, key, sealed.header.epoch, sealed.header.run)
        plain = aead.decrypt(sealed.header.nonce, _with_tag(sealed.data, sealed.tag), sealed.header.associated_data())
    except InvalidTag:
        raise FrameError(f"frame {sealed.header.sequence}: its seal does not open (tag mismatch: the frame, its "
                         f"header, the key or the spec differ from the sensor's)") from None
    return _codes_of(plain, sealed.data)


def seal_stream(steps: Iterable[tuple[int, ...]], key: MasterKey, spec: ReadoutSpec, header: SealHeader) -> Sealed:
    """AES-256-GCM as the sensor computes it: a keystream core fed one readout step at a time (the position's
    codes), the tag over the whole frame. Equal, byte for byte, to :func:`seal`."""
    if spec.seal != "aes-256-gcm":
        return seal(_codes(steps, spec, header.shape), key, spec, header)
    secret = key.seal_key(spec.seal, header.epoch, header.run)
    core = Cipher(algorithms.AES(secret), modes.GCM(header.nonce)).encryptor()
    core.authenticate_additional_data(header.associated_data())
    width = 1 if spec.output_bits == 8 else 2
    out = bytearray()
    for codes in steps:
        out += core.update(b"".join(code.to_bytes(width, "little") for code in codes))
    out += core.finalize()
    cipher = np.frombuffer(bytes(out), dtype=np.dtype(spec.output_dtype).newbyteorder("<"))
    return Sealed(cipher.astype(spec.output_dtype).reshape(header.shape), core.tag, header)


def _codes(steps: Iterable[tuple[int, ...]], spec: ReadoutSpec, shape: tuple[int, int, int]) -> np.ndarray:
    return np.array([c for step in steps for c in step], dtype=spec.output_dtype).reshape(shape)
