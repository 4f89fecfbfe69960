"""A video file, read by OpenCV frame by frame (not live: a replay never drops a frame).

Frame times are the file's own positions (``CAP_PROP_POS_MSEC``), so a replay is deterministic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.sources.base import PathSetting, Source, SourceConfig
from edge.sources.folder import SUFFIXES as IMAGE_SUFFIXES
from edge.sources.opencv import OpenCVSource


class VideoConfig(SourceConfig):
    kind: Literal["video"] = "video"
    path: PathSetting = Field(description="a video file OpenCV can read, e.g. clip.mp4 (unit: path)")

    def build(self, readout) -> Source:
        return OpenCVSource(self.path, is_file=True)

    @classmethod
    def for_path(cls, path: Path) -> VideoConfig | None:
        if path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES | {".mcap"}:
            return cls(path=path)
        return None

    def describe(self) -> str:
        return f"video '{self.path}'"
