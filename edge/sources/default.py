"""The embedded default's frames: photographs that ship inside the ``scikit-image`` wheel (``kind = "default"``).

Five of them, in this order: ``astronaut`` (Eileen Collins, 512 x 512, one face), ``camera`` (the
cameraman, grey, 512 x 512, one face), ``coffee`` (600 x 400), ``rocket`` (640 x 427) and
``hubble_deep_field`` (1000 x 872): faces and no faces, colour and grey, square and not. They are read as files (scikit-image
itself is not imported) and fitted to the model as every frame is (``edge.sensor``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from edge.errors import ImageFileError
from edge.sources.base import Source, SourceConfig
from edge.sources.folder import FolderSource

PHOTOS = ("astronaut.png", "camera.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg")


def photo(name: str) -> Path:
    """Path of a sample photograph inside the scikit-image wheel, without importing scikit-image."""
    found = importlib.util.find_spec("skimage")
    if found is None or not found.submodule_search_locations:
        raise ImageFileError("the default photos ship with scikit-image, which is not installed; "
                             "`pip install 'keycam[demo]'` (scripts/run.sh does)")
    data = Path(next(iter(found.submodule_search_locations))) / "data"
    path = data / name if "." in name else next((data / f"{name}{s}" for s in (".png", ".jpg")
                                                  if (data / f"{name}{s}").is_file()), data / f"{name}.png")
    if not path.is_file():
        raise ImageFileError(f"scikit-image has no sample photo '{path.name}'; pass a picture of your own")
    return path


class DefaultConfig(SourceConfig):
    kind: Literal["default"] = "default"

    def build(self, sensor) -> Source:
        paths = [photo(name) for name in PHOTOS]
        return FolderSource(paths[0].parent, names=[p.name for p in paths])

    def describe(self) -> str:
        return f"the package-shipped photos ({', '.join(Path(name).stem for name in PHOTOS)})"
