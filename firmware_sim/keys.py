"""The master key, the key schedule and the public fingerprint.

A keycam master key is 32 bytes (256 bits) from the operating system's CSPRNG,
stored raw in a file of mode 0600. Nothing uses it directly: every purpose gets
its own 256-bit key from HKDF-SHA256 (RFC 5869)::

    derived = HKDF-SHA256(IKM = master key, salt = "keycam/1", info = purpose, L = 32)

with these ASCII ``info`` strings (decimal integers, no padding):

    keycam/1/sensor/{H}x{W}/epoch/{E}      the sensor's readout layout L0 for an H x W frame
    keycam/1/layer/{LABEL}/{H}x{W}         a network layer's output layout (LABEL: [A-Za-z0-9._:-]+)
    keycam/1/seal/{AEAD}/epoch/{E}/run/{R} the sealed readout's key (AEAD: aes-256-gcm | chacha20-poly1305;
                                           R: the sensor run's 128-bit identifier, 32 hex digits; seal.py)
    keycam/1/fingerprint                   the public fingerprint (first 8 bytes)

The fingerprint, ``kc1:`` and 16 hex digits, identifies a key without revealing
it (HKDF output is a PRF of the key; recovering the key from it means breaking
HMAC-SHA256). Key bytes never appear in a repr, a log line or an error.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from firmware_sim.errors import KeyFileError

KEY_BYTES = 32
HKDF_SALT = b"keycam/1"
FINGERPRINT_PREFIX = "kc1:"
_LABEL = re.compile(r"^[A-Za-z0-9._:-]+$")


def sensor_info(height: int, width: int, epoch: int) -> bytes:
    """The HKDF ``info`` of the sensor layout for an H x W frame in a key epoch."""
    _check_size(height, width)
    if not isinstance(epoch, int) or not 0 <= epoch < 1 << 64:
        raise ValueError(f"epoch {epoch!r} must be an integer in 0 .. 2**64-1")
    return f"keycam/1/sensor/{height}x{width}/epoch/{epoch}".encode("ascii")


def layer_info(label: str, height: int, width: int) -> bytes:
    """The HKDF ``info`` of a network layer's output layout."""
    _check_size(height, width)
    if not _LABEL.match(label):
        raise ValueError(f"layer label {label!r} must match [A-Za-z0-9._:-]+")
    return f"keycam/1/layer/{label}/{height}x{width}".encode("ascii")


def seal_info(aead: str, epoch: int, run: bytes) -> bytes:
    """The HKDF ``info`` of the sealing key of one key epoch and one sensor run (``firmware_sim.seal``)."""
    if aead not in ("aes-256-gcm", "chacha20-poly1305"):
        raise ValueError(f"AEAD {aead!r} must be aes-256-gcm or chacha20-poly1305")
    if not isinstance(epoch, int) or not 0 <= epoch < 1 << 64:
        raise ValueError(f"epoch {epoch!r} must be an integer in 0 .. 2**64-1")
    if not isinstance(run, bytes) or len(run) != 16:
        raise ValueError("a sensor run's identifier is 16 bytes")
    return f"keycam/1/seal/{aead}/epoch/{epoch}/run/{run.hex()}".encode("ascii")


def _check_size(height: int, width: int) -> None:
    if not (isinstance(height, int) and isinstance(width, int) and height >= 1 and width >= 1):
        raise ValueError(f"frame size {height!r}x{width!r} must be positive integers")


class MasterKey:
    """A 256-bit master key. Its repr shows the fingerprint only; it refuses to be pickled."""

    __slots__ = ("_secret", "_fingerprint")

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, (bytes, bytearray)) or len(secret) != KEY_BYTES:
            size = len(secret) if isinstance(secret, (bytes, bytearray)) else type(secret).__name__
            raise KeyFileError(f"a master key is exactly {KEY_BYTES} bytes, got {size}")
        self._secret = bytes(secret)
        self._fingerprint = FINGERPRINT_PREFIX + self.derive(b"keycam/1/fingerprint", 8).hex()

    # -- creation -----------------------------------------------------------

    @classmethod
    def generate(cls) -> MasterKey:
        """A fresh key from the operating system's CSPRNG."""
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def load(cls, path: str | Path) -> MasterKey:
        """Read a key file, refusing one that is missing, the wrong length, or open to group/others."""
        path = Path(path)
        if path.is_symlink():  # O_NOFOLLOW would say "too many levels of symbolic links"
            target = os.readlink(path)
            missing = "" if path.exists() else ", to a file that does not exist"
            raise KeyFileError(f"key file '{path}' is a symbolic link (to '{target}'{missing}); keycam reads key "
                               f"files only directly: pass the key file itself")
        try:  # O_NONBLOCK: a FIFO must not block the open (it is refused below, as not a regular file)
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            raise KeyFileError(f"key file '{path}' does not exist; create one with `keycam keygen {path}`") from None
        except IsADirectoryError:
            raise KeyFileError(f"key file '{path}' is a directory; pass the key file itself") from None
        except OSError as error:
            raise KeyFileError(f"key file '{path}' cannot be opened ({error.strerror}); check the path") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            kind = "a directory; pass the key file itself" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise KeyFileError(f"key file '{path}' is {kind}")
        with os.fdopen(fd, "rb") as handle:
            mode = stat.S_IMODE(info.st_mode)
            if mode & 0o077:
                raise KeyFileError(
                    f"key file '{path}' has mode {mode:04o}, readable or writable by group or others; "
                    f"run `chmod 600 {path}`"
                )
            secret = handle.read(KEY_BYTES + 1)
        if len(secret) != KEY_BYTES:
            got = f"more than {KEY_BYTES}" if len(secret) > KEY_BYTES else str(len(secret))
            raise KeyFileError(
                f"key file '{path}' holds {got} bytes, a keycam key is exactly {KEY_BYTES} raw bytes "
                f"(was it copied as text?); generate a new one with `keycam keygen`"
            )
        return cls(secret)

    def save(self, path: str | Path, *, force: bool = False) -> None:
        """Write the key with mode 0600, atomically; refuses to replace a file unless ``force``."""
        path = Path(path)
        if path.is_dir():
            raise KeyFileError(f"key file '{path}' is a directory; name a file inside it")
        if path.exists() and not force:
            raise KeyFileError(f"key file '{path}' already exists; pass --force to replace it (the old key is lost)")
        if not path.parent.is_dir():
            raise KeyFileError(f"cannot write key file '{path}': directory '{path.parent}' does not exist")
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)  # whatever the umask
                handle.write(self._secret)
                handle.flush()
                os.fsync(handle.fileno())
            if force:
                os.replace(temp, path)
            else:
                os.link(temp, path)  # fails if someone created the file meanwhile
                os.unlink(temp)
        except FileExistsError:
            os.unlink(temp)
            raise KeyFileError(f"key file '{path}' already exists; pass --force to replace it") from None
        except BaseException:
            if temp.exists():
                os.unlink(temp)
            raise

    # -- schedule -----------------------------------------------------------

    def derive(self, info: bytes, length: int = 32) -> bytes:
        """HKDF-SHA256 of the master key for one purpose (see the module docstring)."""
        return HKDF(algorithm=SHA256(), length=length, salt=HKDF_SALT, info=info).derive(self._secret)

    def sensor_key(self, height: int, width: int, epoch: int = 0) -> bytes:
        """The AES-256 key of the sensor layout for an H x W frame in ``epoch``."""
        return self.derive(sensor_info(height, width, epoch))

    def seal_key(self, aead: str, epoch: int, run: bytes) -> bytes:
        """The sealed readout's 256-bit key for one key epoch and one sensor run."""
        return self.derive(seal_info(aead, epoch, run))

    def layer_key(self, label: str, height: int, width: int) -> bytes:
        """The AES-256 key of a network layer's output layout."""
        return self.derive(layer_info(label, height, width))

    @property
    def fingerprint(self) -> str:
        """Public identifier of the key, e.g. ``kc1:3f9a21b077c40d12``."""
        return self._fingerprint

    # -- hygiene ------------------------------------------------------------

    def __repr__(self) -> str:
        return f"MasterKey(fingerprint={self._fingerprint!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MasterKey):
            return NotImplemented
        return hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def __reduce__(self):  # noqa: D105 - pickling would write key bytes somewhere
        raise TypeError("MasterKey refuses to be pickled; pass the key file path instead")

    def __copy__(self) -> MasterKey:
        return self

    def __deepcopy__(self, memo: dict) -> MasterKey:
        return self
