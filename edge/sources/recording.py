"""Replaying a keycam recording (MCAP): its measurements, with their epochs, sensor times and provenance.

``path`` is one recording file, or a folder of segments (``[record] path``'s form), replayed oldest first, one
after the other. Recordings of both formats replay (``edge.recording``). A truncated recording (process killed
mid-write) replays up to its last complete chunk; a chunk whose CRC does not match is skipped with its frames.
Either is said in the run's summary (:meth:`RecordingSource.summary`), and ``damaged`` lets ``keycam replay``
exit non-zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.errors import ImageFileError
from edge.frame import Frame
from edge.recording import RecordedFrame, RecordingInfo, check_recording, list_segments, read_recording
from edge.sources.base import CLAIM_EXACT, CLAIM_NONE, PathSetting, Source, SourceConfig


def recording_files(path: Path) -> list[Path]:
    """The files a recording path stands for: itself, or a folder's segments, oldest first (checked, each)."""
    if not path.is_dir():
        return [check_recording(path)]
    files = [check_recording(segment.path) for segment in list_segments(path)]
    if not files:
        raise ImageFileError(f"folder '{path}' holds no recording segments (files named like 20261207T004512Z.mcap)")
    return files


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
        files = recording_files(self.path)  # now, before the run opens any output
        self.info = RecordingInfo()
        self._frames = (frame for file in files for frame in read_recording(file, info=self.info))

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
        provenance = {}
        if recorded.seal:  # a sealed measurement's seal, opened by the key holder's replay (edge.seal)
            from edge.seal import Seal

            provenance["seal"] = Seal.from_hex(recorded.seal)
        return self._frame(recorded.image, recorded.timestamp_ns, self.path.name, measured=True,
                           epoch=recorded.epoch, fingerprint=recorded.fingerprint or self.info.fingerprint,
                           source_size=recorded.source_size, masks=recorded.masks or self.info.masks,
                           monotonic_ns=recorded.monotonic_ns, **provenance)


class RecordingConfig(SourceConfig):
    kind: Literal["recording"] = "recording"
    path: PathSetting = Field(description="a keycam recording, .mcap, or a folder of its segments (unit: path)")

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
