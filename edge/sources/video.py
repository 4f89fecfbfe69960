"""A video file, read by OpenCV frame by frame (not live: a replay never drops a frame).

Frame times are the file's own positions (``CAP_PROP_POS_MSEC``), so a replay is deterministic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.sources.base import CLAIM_FALLBACK, CLAIM_NONE, PathSetting, Source, SourceConfig
from edge.sources.opencv import OpenCVSource


class VideoConfig(SourceConfig):
    kind: Literal["video"] = "video"
    path: PathSetting = Field(description="a video file OpenCV can read, e.g. clip.mp4 (unit: path)")

    def build(self, sensor) -> Source:
        return OpenCVSource(self.path, is_file=True)

    @classmethod
    def claim(cls, path: Path) -> int:
        """Any file, as a fallback: what no other kind names by its suffix is tried as a video."""
        return CLAIM_FALLBACK if path.is_file() else CLAIM_NONE

    @classmethod
    def for_path(cls, path: Path) -> VideoConfig:
        return cls(path=path)

    def describe(self) -> str:
        return f"video '{self.path}'"
