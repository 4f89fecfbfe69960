"""How a plain tensor is represented in the keyed graph (the ``fresh`` policy).

- :class:`Tokens`: a plain (N, C, H, W) feature map, kept channels-last as
  (N, H*W, C) float with its positions in a layout (physical q holds logical
  ``layout.perm[q]``). A pending constant Pad (not yet applied) may ride along:
  the next spatial layer reads it through its index table. ``flat`` tokens
  hold the same data as (N*H*W, C), the shape a Gemm writes, so that
  onnxruntime can fuse the activations that follow into it.
- :class:`Flat`: a plain (N, F) vector made by flattening a map larger than
  1 x 1, or a Transpose of one; kept as (N, H*W*C) in layout order. Its
  consumer (Gemm or MatMul) permutes its weight instead of the data.
- :class:`ChannelsLast`: a plain Transpose of a map that keeps the batch first,
  (N, H, W, C) for ``perm`` (0, 2, 3, 1); kept as the same (N, H*W, C) tokens.
- :class:`Anchors`: an anchor list, a plain tensor one of whose axes (``axis``)
  runs over the positions of one or more maps (a detection head's anchors,
  (N, H*W*A, K); YOLO's (N, 4 + classes, H1*W1 + H2*W2 + H3*W3)), in its plain
  shape, that axis in ``segments``: each a run of entries in one map's layout.
- :class:`Same`: a tensor whose keyed form equals the plain one (vectors after
  global pooling, shapes, constants).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from export.layout import Layout


@dataclass(frozen=True)
class PendingPad:
    top: int
    left: int
    bottom: int
    right: int
    value: float


@dataclass(frozen=True)
class Tokens:
    name: str
    channels: int
    height: int
    width: int
    layout: Layout
    pad: PendingPad | None = None
    flat: bool = False

    @property
    def size(self) -> int:
        return self.height * self.width


@dataclass(frozen=True)
class Flat:
    name: str
    channels: int
    height: int
    width: int
    layout: Layout
    order: str  # the plain flatten's dimension order: "chw" (NCHW), "hwc" (channels-last), or any other of c, h, w

    def plain_index(self) -> np.ndarray:
        """plain feature index of each keyed feature index q * C + c."""
        q = np.arange(self.height * self.width)
        logical = self.layout.perm[q]  # (HW,) logical positions a = y * W + x
        ys, xs = np.divmod(logical, self.width)
        coords = {"c": np.arange(self.channels)[None, :], "h": ys[:, None], "w": xs[:, None]}  # (HW, C) grids
        sizes = {"c": self.channels, "h": self.height, "w": self.width}
        index = np.zeros((self.height * self.width, self.channels), dtype=np.int64)
        for letter in self.order:  # row-major over the plain flatten's dimensions
            index = index * sizes[letter] + coords[letter]
        return index.reshape(-1)  # (HW, C) -> (HW*C,) in keyed order


@dataclass(frozen=True)
class ChannelsLast:
    name: str  # the (N, H*W, C) tokens
    channels: int
    height: int
    width: int
    layout: Layout
    perm: tuple = (0, 2, 3, 1)  # the plain Transpose of the (N, C, H, W) map

    @property
    def order(self) -> str:
        """The plain tensor's dimensions after the batch, as letters of c, h, w ("hwc" for channels-last)."""
        return "".join("chw"[axis - 1] for axis in self.perm[1:])


@dataclass(frozen=True)
class Segment:
    """``length`` consecutive entries of an anchor list's axis: ``length // group`` positions of one map, in its
    layout, ``group`` entries per position (a head's anchors per cell)."""

    length: int
    layout: Layout
    group: int = 1

    def logical(self) -> np.ndarray:
        """The plain entry (within the segment) that each keyed entry holds."""
        j = np.arange(self.length)
        return self.layout.perm[j // self.group] * self.group + j % self.group


@dataclass(frozen=True)
class Anchors:
    name: str
    axis: int  # the axis that runs over the positions (in the plain shape)
    segments: tuple[Segment, ...]

    def logical_index(self) -> np.ndarray:
        """The plain index along ``axis`` that each keyed index holds."""
        parts, start = [], 0
        for segment in self.segments:
            parts.append(start + segment.logical())
            start += segment.length
        return np.concatenate(parts)

    @property
    def length(self) -> int:
        return sum(s.length for s in self.segments)


@dataclass(frozen=True)
class Same:
    name: str


Value = Tokens | Flat | ChannelsLast | Anchors | Same
