"""The sealed readout on the device: sealed at the sensor, opened only where the key is, right before the model.

Under a sealed spec (readout spec version 4, ``firmware_sim.seal``) the readout stage seals each frame's
measurement as it leaves the sensor (:class:`Sealer`: one per run, holding the run's random identifier and
its frame counter, the nonce), and the frame carries its :class:`Seal` (the authenticated header and the
tag) beside the ciphertext in ``Frame.image``. Everything between the sensor and the model (the queues, a
recording, the forwarding spool, a request to a server) holds ciphertext.

:class:`Opener` opens frames where the key is: the device's front stage before the keyed (or feature) model,
a key-holding server, a key holder's replay. A frame is refused (a ``FrameError``: counted, logged in one
line, never given to a model) when

- its tag does not verify (a changed byte of the ciphertext or the header, another key, another spec);
- its header does not describe it (another key fingerprint, spec, epoch or shape than the frame's);
- its nonce was seen before in this run of the opener, or is older than the last ``window`` frames of its
  sensor run (a replay).

What replay protection covers: within one opener (a run of the device, of a server, of one replay) a frame
is accepted once; a frame of a sensor run is refused once ``window`` newer frames of that run were opened.
Across restarts of the opener nothing is remembered: a recording of sealed frames replays (it is meant
to), and a server restarted mid-stream opens the spool the device sends again. Capture times are in the
authenticated header, so a receiver that must refuse old frames can (``max_age_s``).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from edge.errors import FrameError
from edge.frame import Frame
from firmware_sim.keys import MasterKey
from firmware_sim.seal import SealHeader, Sealed, cipher, open_sealed, seal, spec_digest
from firmware_sim.spec import ReadoutSpec

WINDOW = 4096  # frames of one sensor run kept for the replay check
RUNS_KEPT = 64  # sensor runs whose counters are remembered


@dataclass(frozen=True)
class Seal:
    """What travels beside a sealed measurement: the authenticated header and the 16-byte tag."""

    header: SealHeader
    tag: bytes

    def to_hex(self) -> str:
        """``header hex:tag hex`` (the form recordings, the spool and requests carry)."""
        return f"{self.header.associated_data().hex()}:{self.tag.hex()}"

    @classmethod
    def from_hex(cls, text: str) -> Seal:
        try:
            header, tag = str(text).split(":")
            return cls(SealHeader.parse(bytes.fromhex(header)), bytes.fromhex(tag))
        except ValueError:
            raise FrameError("a frame's seal is not 'header hex:tag hex'; it was damaged or is not keycam's") from None


class Sealer:
    """Seals one run's measurements: a 128-bit random run identifier, drawn now, and a counter (the nonce)."""

    def __init__(self, key: MasterKey, spec: ReadoutSpec, run: bytes | None = None, counter: int = 0) -> None:
        """``run``: the run identifier (default: 16 fresh random bytes; give one only to reproduce a seal, e.g.
        firmware-sim against scramble, never to seal two frames with one counter); ``counter``: the first nonce."""
        self.key, self.spec = key, spec
        self.run = os.urandom(16) if run is None else run
        self._digest = spec_digest(spec)
        self._counter = counter
        self._lock = threading.Lock()
        self._ciphers: dict[int, object] = {}  # epoch -> this run's AEAD (its key derived once)

    def seal(self, codes: np.ndarray, frame: Frame, epoch: int, masks: str = "") -> tuple[np.ndarray, Seal]:
        """(the ciphertext, in the measurement's shape and dtype; its seal) for one measured frame."""
        with self._lock:
            counter, self._counter = self._counter, self._counter + 1
        header = SealHeader(self.run, counter, epoch, frame.sequence, frame.timestamp_ns, codes.shape,
                            self.key.fingerprint, self._digest, masks)
        if epoch not in self._ciphers:
            self._ciphers = {epoch: cipher(self.spec, self.key, epoch, self.run)}  # epochs move forward
        sealed = seal(codes, self.key, self.spec, header, self._ciphers[epoch])
        return sealed.data, Seal(header, sealed.tag)


class Opener:
    """Opens sealed frames with the key: the tag, the header against the frame, and the replay window."""

    def __init__(self, key: MasterKey, spec: ReadoutSpec, window: int = WINDOW, max_age_s: float = 0.0) -> None:
        self.key, self.spec, self.window, self.max_age_s = key, spec, window, max_age_s
        self._digest = spec_digest(spec)
        self._runs: OrderedDict[bytes, tuple[int, set[int]]] = OrderedDict()  # run -> (highest, recent counters)
        self._lock = threading.Lock()
        self._cipher: tuple | None = None  # ((run, epoch), its AEAD): the last one used
        self.opened = self.refused = 0

    def open(self, frame: Frame) -> Frame:
        """The frame with its measurement opened (``seal`` gone); FrameError, counted, when it is refused."""
        try:
            codes = self._open(frame)
        except FrameError:
            self.refused += 1
            raise
        self.opened += 1
        return frame.replace(image=codes, seal=None)

    def _open(self, frame: Frame) -> np.ndarray:
        seal_, header = frame.seal, frame.seal.header if frame.seal is not None else None
        if header is None:
            raise FrameError(f"frame {frame.sequence} is not sealed, and the readout spec is; it is not the "
                             f"sensor's")
        if header.fingerprint != self.key.fingerprint or header.spec_digest != self._digest:
            raise FrameError(f"frame {frame.sequence} was sealed with key {header.fingerprint} or another spec; "
                             f"open it with its own key and model")
        if header.epoch != frame.epoch or header.shape != frame.image.shape:
            raise FrameError(f"frame {frame.sequence}: its seal says epoch {header.epoch} and shape "
                             f"{header.shape}, the frame {frame.epoch} and {frame.image.shape}")
        if self.max_age_s and time.time_ns() - header.timestamp_ns > self.max_age_s * 1e9:
            raise FrameError(f"frame {frame.sequence} was sealed more than {self.max_age_s:g} s ago; refused as old")
        wanted = (header.run, header.epoch)
        if self._cipher is None or self._cipher[0] != wanted:
            self._cipher = (wanted, cipher(self.spec, self.key, header.epoch, header.run))
        codes = open_sealed(Sealed(frame.image, seal_.tag, header), self.key, self.spec, self._cipher[1])
        self._remember(header, frame.sequence)
        return codes

    def _remember(self, header: SealHeader, sequence: int) -> None:
        """Refuse a nonce seen before, or older than the window; then remember it (after the tag verified)."""
        with self._lock:
            highest, seen = self._runs.pop(header.run, (-1, set()))
            if header.counter in seen or header.counter <= highest - self.window:
                self._runs[header.run] = (highest, seen)
                raise FrameError(f"frame {sequence}: nonce {header.counter} of sensor run {header.run.hex()[:8]} "
                                 f"was seen before (a replay); refused")
            seen.add(header.counter)
            highest = max(highest, header.counter)
            if len(seen) > 2 * self.window:
                seen = {c for c in seen if c > highest - self.window}
            self._runs[header.run] = (highest, seen)
            while len(self._runs) > RUNS_KEPT:
                self._runs.popitem(last=False)
