"""Layouts: which logical position each physical position of a feature map holds.

A layout of an H x W map is a permutation ``perm`` of its N = H * W positions:
physical position q holds logical position ``perm[q]`` (raster order,
``row * W + col``). ``inv[a]`` is the physical position of logical a.

Layouts come from the key schedule, never from a random generator:

- the sensor's layout L0 of an H x W frame in epoch E is the readout order of
  ``firmware_sim`` (``keycam/1/sensor/{H}x{W}/epoch/{E}``);
- a layer's layout uses ``keycam/1/layer/{LABEL}/{H}x{W}``, LABEL being
  ``{model salt}.{class}``: one per class of feature maps that must share a
  layout (see :class:`UnionFind`).

A manifest names a layout by these coordinates, so a key holder can rebuild it
(``edge.layouts``) without the model.
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


class UnionFind:
    """Classes of tensors that must share one layout (element-wise operands, concat inputs, ...)."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}
        self._order: dict[str, int] = {}

    def add(self, name: str) -> None:
        if name not in self._parent:
            self._parent[name] = name
            self._order[name] = len(self._order)

    def __contains__(self, name: str) -> bool:
        return name in self._parent

    def find(self, name: str) -> str:
        root = name
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[name] != root:  # path compression
            self._parent[name], name = root, self._parent[name]
        return root

    def union(self, a: str, b: str) -> None:
        self.add(a)
        self.add(b)
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # the earlier tensor stays the root, so class names follow the graph's order
            if self._order[ra] > self._order[rb]:
                ra, rb = rb, ra
            self._parent[rb] = ra

    def roots(self) -> list[str]:
        """Class representatives in order of first appearance."""
        return sorted({self.find(n) for n in self._parent}, key=self._order.__getitem__)
