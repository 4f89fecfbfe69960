"""The embedded default's frames: the 20 Fashion-MNIST test images that ship inside the ``foolbox`` package.

28 x 28 grey pictures, the class in the file name, read as an image folder (``edge.sources.folder``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from edge.errors import ImageFileError
from edge.sources.base import Source, SourceConfig
from edge.sources.folder import FolderSource

PATTERN = "fashionMNIST_*.png"


def frames_folder() -> tuple[Path, str]:
    """(folder, glob pattern) of the package-shipped default frames."""
    found = importlib.util.find_spec("foolbox")
    if found is None or not found.submodule_search_locations:
        raise ImageFileError("the default frames ship with foolbox, which is not installed; "
                             "`pip install --no-deps foolbox==3.3.4` (scripts/run.sh does)")
    return Path(next(iter(found.submodule_search_locations))) / "data", PATTERN


class DefaultConfig(SourceConfig):
    kind: Literal["default"] = "default"

    def build(self, readout) -> Source:
        return FolderSource(*frames_folder())

    def describe(self) -> str:
        return "the package-shipped Fashion-MNIST frames"
