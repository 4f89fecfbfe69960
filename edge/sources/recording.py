"""Replaying a keycam recording (MCAP): its measurements, with their epochs and sensor times.

A truncated recording (process killed mid-write) replays up to its last complete chunk, with a
warning (see ``edge.recording``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge.errors import ImageFileError
from edge.recording import RecordedFrame, RecordingInfo, read_recording
from edge.sources.base import Frame, Source


class RecordingSource(Source):
    live = False
    channel_order = "measurement"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.info = RecordingInfo()
        self._frames: Iterator[RecordedFrame] | None = None
        self._current: RecordedFrame | None = None

    def _open(self) -> None:
        if not self.path.is_file():
            raise ImageFileError(f"recording '{self.path}' does not exist")
        self._frames = read_recording(self.path, info=self.info)

    def _read(self) -> tuple[np.ndarray, int, str] | None:
        self._current = next(self._frames, None)
        if self._current is None:
            return None
        return self._current.image, self._current.timestamp_ns, self.path.name

    def _frame(self, image: np.ndarray, timestamp_ns: int, origin: str) -> Frame:
        return Frame(image, self._sequence, timestamp_ns, origin, measured=True, epoch=self._current.epoch,
                     fingerprint=self.info.fingerprint)
