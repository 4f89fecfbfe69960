"""Layouts: which logical position each physical position of a feature map holds.

A layout of an H x W map is a permutation ``perm`` of its N = H * W positions:
physical position q holds logical position ``perm[q]`` (raster order,
``row * W + col``). ``inv[a]`` is the physical position of logical a.

Layouts come from the key schedule, never from a random generator:

- the sensor's layout L0 of an H x W frame in epoch E is the readout order of
  ``firmware_sim`` (``keycam/1/sensor/{H}x{W}/epoch/{E}``);
- a layer's layout uses ``keycam/1/layer/{LABEL}/{H}x{W}``, LABEL being
  ``{model salt}.{class}``: one per class of feature maps that must share a
  layout (the union-find of ``export/compiler/classes.py``).

A manifest names a layout by these coordinates, so a key holder can rebuild it
without the model (``edge/restore.py`` puts dense outputs back in order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_sim.keys import MasterKey
from firmware_sim.permutation import inverse_table, permutation_table


@dataclass(frozen=True, eq=False)
class Layout:
    """A permutation of an H x W map's positions, with where it comes from."""

    kind: str  # "sensor", "layer" or "natural"
    height: int
    width: int
    perm: np.ndarray = field(repr=False)
    label: str = ""
    epoch: int = 0

    @property
    def size(self) -> int:
        return self.height * self.width

    @property
    def inv(self) -> np.ndarray:
        cached = self.__dict__.get("_inv")
        if cached is None:
            cached = inverse_table(self.perm)
            object.__setattr__(self, "_inv", cached)
        return cached

    def describe(self) -> dict:
        """Public coordinates of the layout, for manifests (no key material)."""
        out = {"kind": self.kind, "height": self.height, "width": self.width}
        if self.kind == "layer":
            out["label"] = self.label
        if self.kind == "sensor":
            out["epoch"] = self.epoch
        return out


def natural(height: int, width: int) -> Layout:
    return Layout("natural", height, width, np.arange(height * width, dtype=np.intp))


def sensor_layout(key: MasterKey, height: int, width: int, epoch: int = 0) -> Layout:
    perm = permutation_table(key.sensor_key(height, width, epoch), height * width)
    return Layout("sensor", height, width, perm, epoch=epoch)


def layer_layout(key: MasterKey, label: str, height: int, width: int) -> Layout:
    perm = permutation_table(key.layer_key(label, height, width), height * width)
    return Layout("layer", height, width, perm, label=label)
