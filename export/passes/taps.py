"""Windows of spatial layers: which input position each tap of each output reads.

For a layer with kernel k, stride s, dilation d and begin padding p (per
axis), output coordinate o and tap t read input coordinate ``s*o - p + d*t``.
:func:`window_taps` returns, for every output position (raster order) and tap,
the input's logical position, or a code for a tap outside the input:

- ``OUTSIDE`` (-1): the layer's own padding (0 for Conv, ignored for MaxPool);
- ``PADDED`` (-2): inside the border of an explicit Pad node folded into the
  layer, which holds that Pad's value.

:func:`keyed_index` turns that into the index table of a keyed layer: rows in
the output layout's physical order, entries in the input layout's physical
positions, padding codes mapped to pad rows appended to the input.
"""

from __future__ import annotations

import numpy as np

from export.compiler.values import PendingPad
from export.layout import Layout

OUTSIDE = -1
PADDED = -2


def _axis(in_len: int, out_len: int, kernel: int, stride: int, dilation: int, pad: int, extra_lo: int,
          extra_hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output coordinate and tap: the input coordinate (in the unpadded input) and a status code."""
    coord = np.arange(out_len)[:, None] * stride - pad + np.arange(kernel)[None, :] * dilation  # (out, k)
    # coord is in the explicitly padded input (extra_lo + in_len + extra_hi); shift to the real input
    real = coord - extra_lo
    inside = (real >= 0) & (real < in_len)
    padded = ~inside & (coord >= 0) & (coord < in_len + extra_lo + extra_hi)
    status = np.where(inside, 0, np.where(padded, PADDED, OUTSIDE))
    return real, status


def window_taps(height: int, width: int, out_h: int, out_w: int, kernel: tuple[int, int],
                strides: tuple[int, int], dilations: tuple[int, int], pads_begin: tuple[int, int],
                pending: PendingPad | None = None) -> np.ndarray:
    """(out_h*out_w, kh*kw) logical input positions, or OUTSIDE / PADDED."""
    lo_h = pending.top if pending else 0
    hi_h = pending.bottom if pending else 0
    lo_w = pending.left if pending else 0
    hi_w = pending.right if pending else 0
    rows, row_status = _axis(height, out_h, kernel[0], strides[0], dilations[0], pads_begin[0], lo_h, hi_h)
    cols, col_status = _axis(width, out_w, kernel[1], strides[1], dilations[1], pads_begin[1], lo_w, hi_w)
    # combine: (out_h, kh) x (out_w, kw) -> (out_h, out_w, kh, kw)
    r = rows[:, None, :, None]
    c = cols[None, :, None, :]
    rs = row_status[:, None, :, None]
    cs = col_status[None, :, None, :]
    logical = r * width + c
    outside = (rs == OUTSIDE) | (cs == OUTSIDE)
    padded = ~outside & ((rs == PADDED) | (cs == PADDED))
    result = np.where(outside, OUTSIDE, np.where(padded, PADDED, logical))
    return result.reshape(out_h * out_w, kernel[0] * kernel[1])  # (oh, ow, kh, kw) -> (oh*ow, kh*kw)


def keyed_index(taps: np.ndarray, in_layout: Layout, out_layout: Layout, pad_rows: dict[int, int]) -> np.ndarray:
    """Index table of the keyed layer: ``taps`` (logical, raster rows) to physical positions and rows.

    ``pad_rows`` maps OUTSIDE / PADDED to the row holding that padding value.
    """
    physical = np.where(taps >= 0, in_layout.inv[np.clip(taps, 0, None)], 0)
    for code, row in pad_rows.items():
        physical = np.where(taps == code, row, physical)
    return physical[out_layout.perm]  # rows in the output's physical order


def conv_pads(node_attrs: dict, in_hw: tuple[int, int], out_hw: tuple[int, int], kernel, strides,
              dilations) -> tuple[int, int]:
    """Begin pads (top, left) of a Conv or pool, resolving auto_pad like onnxruntime does."""
    auto_pad = node_attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("NOTSET", ""):
        pads = list(node_attrs.get("pads", [0, 0, 0, 0]))
        return pads[0], pads[1]
    if auto_pad == "VALID":
        return 0, 0
    begins = []
    for axis in range(2):
        total = max((out_hw[axis] - 1) * strides[axis] + (kernel[axis] - 1) * dilations[axis] + 1 - in_hw[axis], 0)
        begins.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
    return begins[0], begins[1]
