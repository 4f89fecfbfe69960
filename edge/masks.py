"""Privacy masks at the readout: what is under them is never digitised, for anyone.

A mask is polygons in camera pixels (``[readout] masks``) or a mask image (``[readout] mask_image``, any
nonzero pixel masked, laid over the camera frame at its size, nearest-neighbour). It is a sensor setting,
not a model setting: changing it needs no new model. The readout stage applies it twice:

1. **on the camera frame**, before it is fitted to the model: every masked camera pixel becomes 0, so no
   position's value (an area average, a bilinear sample) carries anything of what was under the mask;
   for a Bayer readout the mask covers whole 2x2 cells of the mosaic;
2. **at the readout** (readout spec version 3, ``firmware_sim.readout``): every position whose footprint on
   the camera frame (its model pixel mapped back through the fitting rule, one camera pixel wider on each
   side for the bilinear taps) touches a masked pixel reads input code 0, byte-exact with firmware_sim.

So the keyed model, recordings, forwarded measurements and a key holder's restore all see 0 there: a face
under a mask cannot be detected, recorded, forwarded or unscrambled, by anyone, key holders included. Each
measured frame carries the masks' digest (``Frame.masks``), and so do its results and recordings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.errors import ConfigError
from edge.tasks.geometry import Geometry


@dataclass(frozen=True)
class PrivacyMasks:
    """The run's privacy masks: polygons in camera pixels and an optional mask image."""

    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()
    image: np.ndarray | None = field(default=None, repr=False, compare=False)  # (h, w) bool, its own size
    digest: str = ""

    @classmethod
    def from_settings(cls, polygons: list, image: str | Path = "") -> PrivacyMasks | None:
        """The masks a configuration names, or None when it names none."""
        shapes = tuple(tuple((float(x), float(y)) for x, y in polygon) for polygon in polygons)
        bitmap = _read_image(Path(image)) if image else None
        if not shapes and bitmap is None:
            return None
        hasher = hashlib.sha256(json.dumps(shapes).encode())
        if bitmap is not None:
            hasher.update(np.packbits(bitmap).tobytes() + str(bitmap.shape).encode())
        return cls(shapes, bitmap, "pm1:" + hasher.hexdigest()[:16])

    def camera(self, width: int, height: int, cells: int = 1) -> np.ndarray:
        """(height, width) bool: the masked camera pixels; whole ``cells`` x ``cells`` blocks (a Bayer mosaic)."""
        mask = np.zeros((height, width), np.uint8)
        if self.polygons:
            rings = [np.round(np.asarray(p, np.float64)).astype(np.int32) for p in self.polygons]
            cv2.fillPoly(mask, rings, 1)
        if self.image is not None:
            laid = cv2.resize(self.image.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
            mask |= laid
        if cells > 1:  # a cell is masked if any of its photosites is: the whole cell then
            rows, cols = height - height % cells, width - width % cells
            blocks = mask[:rows, :cols].reshape(rows // cells, cells, cols // cells, cells).max(axis=(1, 3))
            mask[:rows, :cols] = np.repeat(np.repeat(blocks, cells, axis=0), cells, axis=1)
        return mask.astype(bool)

    def positions(self, geometry: Geometry, camera: np.ndarray) -> np.ndarray:
        """(H, W) bool over the model's positions: those whose camera footprint touches a masked pixel of
        ``camera`` ((h, w) bool), through the frame's fitting (``geometry``)."""
        height, width = camera.shape
        table = np.pad(camera.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # summed-area table
        x0, x1 = _footprint(geometry.width, 0, geometry, width)
        y0, y1 = _footprint(geometry.height, 1, geometry, height)
        touched = (table[y1][:, x1] - table[y0][:, x1] - table[y1][:, x0] + table[y0][:, x0]) > 0  # (H, W)
        return touched


def _footprint(count: int, axis: int, geometry: Geometry, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera pixel ranges [start, stop) of the model's ``count`` pixels along ``axis``, one pixel wider each side."""
    edges = (np.arange(count + 1, dtype=np.float64) - geometry.offset[axis]) / geometry.scale[axis]
    start = np.clip(np.floor(edges[:-1]) - 1, 0, limit).astype(np.int64)
    stop = np.clip(np.ceil(edges[1:]) + 1, 0, limit).astype(np.int64)
    return start, stop


def _read_image(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ConfigError(f"readout.mask_image '{path}' does not exist; give a picture whose nonzero pixels are masked")
    picture = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if picture is None or picture.size == 0:
        raise ConfigError(f"readout.mask_image '{path}' cannot be read as a picture; give a PNG whose nonzero pixels "
                          f"are masked")
    return picture > 0
