"""The virtual sensor: a plain source read out as the keycam sensor would, for machines without one.

Each frame of the wrapped source (a folder, a video, a camera without keycam firmware) is brought to
the model's size (``fit_frame``, before digitising) and read out with the key: by ``firmware_sim``'s
reference readout (``reference=True``: integer-only, one address at a time, slow) or by the edge
transform, its byte-for-byte twin (the default; ``tests/conformance`` proves them equal). The
frames it yields are private measurements; the plain frames never leave it.
"""

from __future__ import annotations

import numpy as np

from edge.epochs import EpochSchedule
from edge.sources.base import Frame, Source, to_sensor
from edge.transform import AdcTransform
from firmware_sim.keys import MasterKey
from firmware_sim.readout import readout
from firmware_sim.spec import ReadoutSpec


class VirtualSensor(Source):
    channel_order = "measurement"

    def __init__(self, source: Source, key: MasterKey, spec: ReadoutSpec, height: int, width: int,
                 epoch: int = 0, reference: bool = False, sensor_order: str = "bgr",
                 schedule: EpochSchedule | None = None) -> None:
        super().__init__()
        self.source = source
        self.live = source.live
        self.key, self.spec, self.epoch = key, spec, epoch
        self.schedule = schedule or EpochSchedule(epoch)
        self._epoch = epoch
        self.height, self.width = height, width
        self.reference = reference
        self.sensor_order = sensor_order  # the channel order the emulated sensor delivers
        self.transform = AdcTransform(key, spec)

    def _open(self) -> None:
        self.source.open()

    def _close(self) -> None:
        self.source.close()

    def _read(self) -> tuple[np.ndarray, int, str] | None:
        frame = self.source.read()
        self.skipped = self.source.skipped
        if frame is None:
            return None
        image = to_sensor(frame.image, self.spec, self.height, self.width, self.source.channel_order,
                          self.sensor_order)
        self._epoch = self.schedule.epoch(self._sequence, frame.timestamp_ns)
        if self.reference:
            measurement = readout(image, self.key, self.spec, self._epoch)
        else:
            measurement = self.transform(image, self._epoch)
        return measurement, frame.timestamp_ns, frame.origin

    def _frame(self, image: np.ndarray, timestamp_ns: int, origin: str) -> Frame:
        return Frame(image, self._sequence, timestamp_ns, origin, measured=True, epoch=self._epoch)
