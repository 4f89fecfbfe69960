"""Replaying a keycam recording (MCAP): its measurements, with their epochs and sensor times.

A truncated recording (process killed mid-write) replays up to its last complete chunk; a chunk whose
CRC does not match is skipped with its frames (see ``edge.recording``). Either is said in the run's
summary (:meth:`RecordingSource.summary`), and ``damaged`` lets ``keycam replay`` exit non-zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.frame import Frame
from edge.recording import RecordedFrame, RecordingInfo, check_recording, read_recording
from edge.sources.base import CLAIM_EXACT, CLAIM_NONE, PathSetting, Source, SourceConfig


class RecordingSource(Source):
    live = False
    measured = True
    channel_order = "measurement"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.info = RecordingInfo()
        self._frames: Iterator[RecordedFrame] | None = None

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

    def _read(self) -> Frame | None:
        recorded = next(self._frames, None)
        if recorded is None:
            return None
        return self._frame(recorded.image, recorded.timestamp_ns, self.path.name, measured=True,
                           epoch=recorded.epoch, fingerprint=self.info.fingerprint, source_size=recorded.source_size,
                           masks=self.info.masks)


class RecordingConfig(SourceConfig):
    kind: Literal["recording"] = "recording"
    path: PathSetting = Field(description="a keycam recording, .mcap (unit: path)")

    def build(self, sensor) -> Source:
        return RecordingSource(self.path)

    @classmethod
    def claim(cls, path: Path) -> int:
        return CLAIM_EXACT if path.suffix.lower() == ".mcap" else CLAIM_NONE

    @classmethod
    def for_path(cls, path: Path) -> RecordingConfig:
        return cls(path=path)

    def describe(self) -> str:
        return f"recording '{self.path}'"
