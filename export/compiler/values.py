"""How a plain tensor is represented in the keyed graph (the ``fresh`` policy).

- :class:`Tokens`: a plain (N, C, H, W) feature map, kept channels-last as
  (N, H*W, C) float with its positions in a layout (physical q holds logical
  ``layout.perm[q]``). A pending constant Pad (not yet applied) may ride along:
  the next spatial layer reads it through its index table. ``flat`` tokens
  hold the same data as (N*H*W, C), the shape a Gemm writes, so that
  onnxruntime can fuse the activations that follow into it.
- :class:`Flat`: a plain (N, F) vector made by flattening a map larger than
  1 x 1; kept as (N, H*W*C) in layout order. Its consumer (Gemm or MatMul)
  permutes its weight instead of the data.
- :class:`ChannelsLast`: a plain (N, H, W, C) tensor (a Transpose of a map);
  kept as the same (N, H*W, C) tokens.
- :class:`Dense`: a plain tensor reshaped from a channels-last map, e.g.
  (N, H*W*A, K) anchors of a detection head; its order follows the layout.
- :class:`Same`: a tensor whose keyed form equals the plain one (vectors after
  global pooling, shapes, constants).
"""

from __future__ import annotations

from dataclasses import dataclass

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
    order: str  # "chw" (NCHW flatten) or "hwc" (flatten of a channels-last transpose)

    def plain_index(self):
        """plain feature index of each keyed feature index q * C + c."""
        import numpy as np

        q = np.arange(self.height * self.width)
        c = np.arange(self.channels)
        logical = self.layout.perm[q][:, None]  # (HW, 1)
        if self.order == "chw":
            index = c[None, :] * (self.height * self.width) + logical  # (HW, C)
        else:
            index = logical * self.channels + c[None, :]
        return index.reshape(-1)  # (HW, C) -> (HW*C,) in keyed order


@dataclass(frozen=True)
class ChannelsLast:
    name: str  # the (N, H*W, C) tokens
    channels: int
    height: int
    width: int
    layout: Layout


@dataclass(frozen=True)
class Dense:
    name: str
    plain_shape: tuple
    layout: Layout
    group: int  # consecutive entries per position along the positions axis
    axis: int  # the axis that runs over positions (times group)


@dataclass(frozen=True)
class Same:
    name: str


Value = Tokens | Flat | ChannelsLast | Dense | Same
