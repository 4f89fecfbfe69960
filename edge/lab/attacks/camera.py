"""The victim camera of the attacks: what leaves its sensor under the paper's readout or the sealed one.

Every attack in this package is measured twice, side by side (docs/privacy.md): against the paper's readout
(``rgb8``, ``gray8``: the keyed order, codes unchanged) and against the sealed readout (``rgb8-sealed``,
``gray8-sealed``: the same order, then the codes sealed with an AEAD, ``firmware_sim.seal``). A
:class:`Camera` is one sensor run: a key, a spec and, when the spec is sealed, one :class:`edge.seal.Sealer`
(its random run identifier and its frame counter, the nonce), exactly as the device's readout stage seals.
:meth:`Camera.stream` is what an eavesdropper, a stolen recording or a forwarding spool holds: the measurements
(ciphertext under a sealed spec, in the measurement's shape and dtype). :meth:`Camera.open` is the key holder's
side, kept so that tests can show the ciphertext is a genuine seal that opens.
"""

from __future__ import annotations

import numpy as np

from edge.frame import Frame
from edge.seal import Opener, Seal, Sealer
from edge.transform import AdcTransform
from firmware_sim.keys import MasterKey
from firmware_sim.spec import ReadoutSpec


class Camera:
    """One sensor run under ``key`` and ``spec``: the paper's readout, or the sealed one for a sealed spec."""

    def __init__(self, key: MasterKey, spec: ReadoutSpec, run: bytes | None = None) -> None:
        self.key, self.spec = key, spec
        self.transform = AdcTransform(key, spec)
        self.sealer = Sealer(key, spec, run) if spec.is_sealed else None
        self.seals: list[Seal] = []  # the seals of the frames read so far (what travels beside the ciphertext)
        self._sequence = 0

    @property
    def sealed(self) -> bool:
        return self.sealer is not None

    def read(self, frame: np.ndarray, epoch: int = 0) -> np.ndarray:
        """The measurement of one sensor frame (H, W, C): the permuted codes, sealed under a sealed spec."""
        codes = self.transform(frame, epoch)
        if self.sealer is None:
            return codes
        meta = Frame(image=codes, sequence=self._sequence, timestamp_ns=self._sequence, origin="attack", epoch=epoch)
        self._sequence += 1
        data, seal = self.sealer.seal(codes, meta, epoch)
        self.seals.append(seal)
        return data

    def stream(self, frames, epoch: int | np.ndarray = 0) -> np.ndarray:
        """(N, H, W, C) measurements of ``frames``, all in ``epoch`` (or one epoch per frame)."""
        epochs = np.broadcast_to(np.asarray(epoch), (len(frames),))
        return np.stack([self.read(f, int(e)) for f, e in zip(frames, epochs)])

    def open(self, measurement: np.ndarray, index: int, epoch: int = 0) -> np.ndarray:
        """Key holders only: the ``index``-th sealed measurement opened (edge.seal.Opener: tag and header checked)."""
        seal = self.seals[index]
        frame = Frame(image=measurement, sequence=seal.header.sequence, timestamp_ns=seal.header.timestamp_ns,
                      origin="attack", measured=True, epoch=epoch, seal=seal)
        return Opener(self.key, self.spec).open(frame).image

    def order(self, height: int, width: int, epoch: int = 0) -> np.ndarray:
        """The truth the attacks are scored against: ``order[q]`` is the logical position read at step q."""
        return self.transform.table(height, width, epoch)


def paired_specs(kind: str = "rgb8") -> tuple[str, str]:
    """The paper's preset and its sealed twin, by the paper's name (``rgb8`` -> ``rgb8-sealed``)."""
    return kind, f"{kind}-sealed"
