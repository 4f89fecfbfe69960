"""Key epochs on the sensor side: which epoch's layout reads out each frame.

``EpochSchedule(base, every_frames, every_seconds)``: epoch ``base`` for every frame when both are 0;
otherwise the epoch advances every ``every_frames`` frames, or every ``every_seconds`` of sensor time
counted from the run's first frame (the readout stage, ``edge.sensor.Readout``, keeps that time, and
never lets an epoch go back: a clock that jumps back does not reuse an old layout). Measurements and recordings carry their epoch; the keyed model's
sensor tables are rebuilt for it on the device (``edge.runtime.KeyedModel``). Rotation bounds how
many frames share one layout, which is what a patient eavesdropper correlating frames needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.errors import ConfigError


@dataclass(frozen=True)
class EpochSchedule:
    """Which key epoch reads out a frame: a value, with no state of its own (the readout stage keeps the run's)."""

    base: int = 0
    every_frames: int = 0
    every_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.every_frames < 0 or self.every_seconds < 0 or self.base < 0:
            raise ConfigError(f"epoch schedule ({self.base}, every {self.every_frames} frames, every "
                              f"{self.every_seconds} s): values must be non-negative")
        if self.every_frames and self.every_seconds:
            raise ConfigError("rotate key epochs by frames or by seconds, not both")
        if self.every_seconds and int(self.every_seconds * 1e9) < 1:
            raise ConfigError(f"rotate every {self.every_seconds} s: a key epoch must last at least a nanosecond")

    @property
    def rotating(self) -> bool:
        return bool(self.every_frames or self.every_seconds)

    def epoch(self, sequence: int, elapsed_ns: int = 0) -> int:
        """The epoch of frame ``sequence``, taken ``elapsed_ns`` after the run's first frame (never below ``base``)."""
        if self.every_frames:
            return self.base + sequence // self.every_frames
        if self.every_seconds:
            return self.base + max(0, elapsed_ns) // int(self.every_seconds * 1e9)
        return self.base
