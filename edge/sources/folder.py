"""An image folder: every file OpenCV can decode (or .npy), in sorted name order (or those matching a pattern,
or the files named, in the order given).

A file that cannot be decoded is skipped and counted; the frame time is the file's modification time.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from edge.errors import ImageFileError
from edge.frame import Frame
from edge.imageio import read_frame
from edge.sources.base import CLAIM_EXACT, CLAIM_NONE, PathSetting, Source, SourceConfig
from firmware_sim.words import IMAGE_SUFFIXES, is_image

log = logging.getLogger(__name__)


class FolderSource(Source):
    live = False

    def __init__(self, folder: str | Path, pattern: str = "*", names: list[str] | None = None) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.pattern = pattern
        self.names = names
        self._files: list[Path] = []
        self._next = 0

    def _open(self) -> None:
        if not self.folder.is_dir():
            raise ImageFileError(f"image folder '{self.folder}' does not exist")
        if self.names is not None:
            self._files = [self.folder / name for name in self.names if (self.folder / name).is_file()]
        else:
            self._files = sorted(p for p in self.folder.glob(self.pattern)
                                 if p.is_file() and is_image(p))
        if not self._files:
            raise ImageFileError(f"image folder '{self.folder}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
        self._next = 0

    def _read(self) -> Frame | None:
        while self._next < len(self._files):
            path = self._files[self._next]
            self._next += 1
            try:
                image = read_frame(path)
            except ImageFileError as error:
                self.skipped += 1
                log.warning("skipping %s: %s", path.name, error)
                continue
            return self._frame(image, path.stat().st_mtime_ns, path.name)
        return None


class FolderConfig(SourceConfig):
    kind: Literal["folder"] = "folder"
    path: PathSetting = Field(description="the image folder (unit: path)")
    pattern: str = Field(default="*", min_length=1, description="glob pattern of the files to read, in name order")

    @field_validator("pattern")
    @classmethod
    def _inside_the_folder(cls, pattern: str) -> str:
        """A pattern names files in the folder: not an absolute path, nor one that climbs out with '..'."""
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise ValueError(f"source.pattern = {pattern!r} reaches outside source.path; give a pattern of the "
                             f"folder's own files, such as '*.png'")
        return pattern

    def build(self, sensor) -> Source:
        return FolderSource(self.path, self.pattern)

    @classmethod
    def claim(cls, path: Path) -> int:
        """A folder, or one image file (read as a folder of one)."""
        return CLAIM_EXACT if path.is_dir() or (path.is_file() and is_image(path)) else CLAIM_NONE

    @classmethod
    def for_path(cls, path: Path) -> FolderConfig:
        if path.is_dir():
            return cls(path=path)
        return cls(path=path.parent, pattern=glob.escape(path.name))

    def describe(self) -> str:
        return f"folder '{self.path}'"
