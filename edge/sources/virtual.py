"""The virtual sensor: a plain source read out as the keycam sensor would, for machines without one.

Each frame of the wrapped source (a folder, a video, a camera without keycam firmware) goes through
the run's readout stage (``edge.sensor.Readout``: fit to the model's size before digitising, then the
keyed readout) in the capture thread, the moment it is taken. The frames this source yields are
private measurements; the plain frames never leave it (except, attached to their measurement, when
a recorder asked for them with the explicit debug flag).
"""

from __future__ import annotations

import numpy as np

from edge.frame import Frame
from edge.sensor import Readout
from edge.sources.base import Source


class VirtualSensor(Source):
    measured = True
    channel_order = "measurement"

    def __init__(self, source: Source, readout: Readout) -> None:
        super().__init__()
        if source.measured:
            raise ValueError(f"{type(source).__name__} already yields measurements; it needs no virtual sensor")
        self.source = source
        self.readout = readout
        self.live = source.live
        self._frame_out: Frame | None = None

    def health(self) -> dict[str, float]:
        return self.source.health()

    def _open(self) -> None:
        self.source.open()

    def _close(self) -> None:
        self.source.close()

    def _read(self) -> tuple[np.ndarray, int, str] | None:
        frame = self.source.read()
        self.skipped = self.source.skipped
        if frame is None:
            return None
        self._frame_out = self.readout.read(frame, self.source.channel_order)
        return self._frame_out.image, frame.timestamp_ns, frame.origin

    def _frame(self, image: np.ndarray, timestamp_ns: int, origin: str) -> Frame:
        return self._frame_out.replace(sequence=self._sequence)
