"""Key epochs on the sensor side: which epoch's layout reads out each frame.

``EpochSchedule(base, every_frames, every_seconds)``: epoch ``base`` for every frame when both are 0;
otherwise the epoch advances every ``every_frames`` frames, or every ``every_seconds`` of sensor time
counted from the first frame. Measurements and recordings carry their epoch; the keyed model's
sensor tables are rebuilt for it on the device (``edge.runtime.KeyedModel``). Rotation bounds how
many frames share one layout, which is what a patient eavesdropper correlating frames needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EpochSchedule:
    base: int = 0
    every_frames: int = 0
    every_seconds: float = 0.0
    _first_ns: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.every_frames < 0 or self.every_seconds < 0 or self.base < 0:
            raise ValueError("epoch schedule values must be non-negative")
        if self.every_frames and self.every_seconds:
            raise ValueError("rotate by frames or by seconds, not both")

    def epoch(self, sequence: int, timestamp_ns: int) -> int:
        if self.every_frames:
            return self.base + sequence // self.every_frames
        if self.every_seconds:
            if self._first_ns is None:
                self._first_ns = timestamp_ns
            return self.base + int((timestamp_ns - self._first_ns) // int(self.every_seconds * 1e9))
        return self.base
