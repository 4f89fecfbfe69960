"""Replaying a keycam recording (MCAP): its measurements, with their epochs and sensor times.

A truncated recording (process killed mid-write) replays up to its last complete chunk; a chunk whose
CRC does not match is skipped with its frames (see ``edge.recording``). Either is said in the run's
summary (:meth:`RecordingSource.summary`), and ``damaged`` lets ``keycam replay`` exit non-zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edge.frame import Frame
from edge.recording import RecordedFrame, RecordingInfo, check_recording, read_recording
from edge.sources.base import PathSetting, Source, SourceConfig


class RecordingSource(Source):
    live = False
    measured = True
    channel_order = "measurement"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.info = RecordingInfo()
        self._frames: Iterator[RecordedFrame] | None = None
        self._current: RecordedFrame | None = None

    def _open(self) -> None:
        check_recording(self.path)  # now, before the run opens any output
        self.info = RecordingInfo()
        self._frames = read_recording(self.path, info=self.info)

    @property
    def damaged(self) -> bool:
        """True when damaged frames were skipped (a file that merely ends early, after a crash, is not damaged)."""
        info = self.info
        return info.damaged or bool(not info.truncated and info.lost) or (info.truncated and info.frames == 0)

    def summary(self) -> str | None:
        return self.info.describe(self.path)

    def _read(self) -> tuple[np.ndarray, int, str] | None:
        self._current = next(self._frames, None)
        if self._current is None:
            return None
        return self._current.image, self._current.timestamp_ns, self.path.name

    def _frame(self, image: np.ndarray, timestamp_ns: int, origin: str) -> Frame:
        return Frame(image, self._sequence, timestamp_ns, origin, measured=True, epoch=self._current.epoch,
                     fingerprint=self.info.fingerprint, source_size=self._current.source_size)


class RecordingConfig(SourceConfig):
    kind: Literal["recording"] = "recording"
    path: PathSetting = Field(description="a keycam recording, .mcap (unit: path)")

    def build(self, readout) -> Source:
        return RecordingSource(self.path)

    @classmethod
    def for_path(cls, path: Path) -> RecordingConfig | None:
        return cls(path=path) if path.suffix.lower() == ".mcap" else None

    def describe(self) -> str:
        return f"recording '{self.path}'"
