"""The 20 Fashion-MNIST test images that ship inside the ``foolbox`` package (``kind = "fashion-mnist"``).

28 x 28 grey pictures, the class in the file name, read as an image folder (``edge.sources.folder``):
the frames of keycam's own Fashion-MNIST CNN (``edge.default``), for its tests and for a second job.
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
    """(folder, glob pattern) of the package-shipped Fashion-MNIST frames."""
    found = importlib.util.find_spec("foolbox")
    if found is None or not found.submodule_search_locations:
        raise ImageFileError("the Fashion-MNIST frames ship with foolbox, which is not installed; "
                             "`pip install --no-deps foolbox==3.3.4` (scripts/setup-venv.sh does)")
    return Path(next(iter(found.submodule_search_locations))) / "data", PATTERN


class FashionMnistConfig(SourceConfig):
    kind: Literal["fashion-mnist"] = "fashion-mnist"

    def build(self, sensor) -> Source:
        return FolderSource(*frames_folder())

    def describe(self) -> str:
        return "the package-shipped Fashion-MNIST frames"
