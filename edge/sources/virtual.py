"""The virtual sensor: a plain source read out as the keycam sensor would, for machines without one.

Each frame of the wrapped source (a folder, a video, a camera without keycam firmware) goes through
the run's readout stage (``edge.sensor.Readout``: fit to the model's size before digitising, then the
keyed readout) in the capture thread, the moment it is taken, and leaves as its measured twin (the
same sequence, time and origin). The plain frames never leave it (except, attached to their
measurement, when a recorder asked for them with the explicit debug flag).

A frame the readout cannot take (``FrameError``: a picture the spec's sensor cannot see) is that
frame's error: it is raised naming the frame, and the capture loop counts it and goes on.
"""

from __future__ import annotations

from edge.errors import ConfigError, FrameError
from edge.frame import Frame
from edge.sensor import Readout
from edge.sources.base import Source


class VirtualSensor(Source):
    measured = True
    channel_order = "measurement"

    def __init__(self, source: Source, readout: Readout) -> None:
        super().__init__()
        if source.measured:
            raise ConfigError(f"{type(source).__name__} already yields measurements; it needs no virtual sensor")
        if readout.source_order != source.channel_order and source.channel_order in ("rgb", "bgr"):
            raise ConfigError(f"the readout stage takes {readout.source_order} frames, and "
                              f"{type(source).__name__} gives {source.channel_order}; build the readout for the source")
        self.source = source
        self.readout = readout
        self.live = source.live

    def health(self) -> dict[str, float]:
        return self.source.health()

    def summary(self) -> str | None:
        return self.source.summary()

    def _open(self) -> None:
        self.source.open()

    def _close(self) -> None:
        self.source.close()

    def _read(self) -> Frame | None:
        frame = self.source.read()
        self.skipped = self.source.skipped
        if frame is None:
            return None
        try:
            return self.readout.read(frame)
        except FrameError as error:
            raise FrameError(f"frame {frame.sequence} ({frame.origin}): {error}") from None
