"""An image folder: every file OpenCV can decode (or .npy), in sorted name order (or those matching a pattern,
or the files named, in the order given).

A file that cannot be decoded is skipped and counted; the frame time is the file's modification time.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edge.errors import ImageFileError
from edge.imageio import read_frame
from edge.sources.base import PathSetting, Source, SourceConfig

log = logging.getLogger(__name__)
SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".npy"}


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
                                 if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not self._files:
            raise ImageFileError(f"image folder '{self.folder}' holds no images ({', '.join(sorted(SUFFIXES))})")
        self._next = 0

    def _read(self) -> tuple[np.ndarray, int, str] | None:
        while self._next < len(self._files):
            path = self._files[self._next]
            self._next += 1
            try:
                image = read_frame(path)
            except ImageFileError as error:
                self.skipped += 1
                log.warning("skipping %s: %s", path.name, error)
                continue
            return image, path.stat().st_mtime_ns, path.name
        return None


class FolderConfig(SourceConfig):
    kind: Literal["folder"] = "folder"
    path: PathSetting = Field(description="the image folder (unit: path)")
    pattern: str = Field(default="*", min_length=1, description="glob pattern of the files to read, in name order")

    def build(self, readout) -> Source:
        return FolderSource(self.path, self.pattern)

    @classmethod
    def for_path(cls, path: Path) -> FolderConfig | None:
        """A folder, or one image file (read as a folder of one)."""
        if path.is_dir():
            return cls(path=path)
        if path.is_file() and path.suffix.lower() in SUFFIXES:
            return cls(path=path.parent, pattern=glob.escape(path.name))
        return None

    def describe(self) -> str:
        return f"folder '{self.path}'"
