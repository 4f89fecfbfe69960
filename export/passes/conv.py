"""Conv: a gather through a precomputed index table, then the ordinary dense reduction.

For a Conv with kernel k x k, stride s, padding p, dilation d, input layout
L_in and output layout L_out, the keyed layer computes at physical output q::

    y'[q] = sum over taps t, channels c of  W[:, c, t] * x'[ L_in^-1( s*L_out(q) - p + d*t ), c ]

Taps outside the input read a zero row appended to the input. In (N, H*W, C)
tokens this is::

    G = Gather(X_padded, index, axis=1)          # (N, HWo, KK, Cin)
    Y = Reshape(G, (N*HWo, KK*Cin)) @ W_m + B    # W_m[t*Cin + c, o] = W[o, c, t]
    Y = Reshape(Y, (N, HWo, Cout))

Grouped convolutions do the same per group with a batched MatMul; depthwise
ones multiply the gathered taps by the kernel and sum over taps. A 1 x 1,
stride 1, unpadded Conv is pointwise: it keeps the input's layout and is a
single Gemm.

On an anchor list (``anchors.py``) a Conv whose kernel is 1 wide, stride 1 and unpadded along the
list's axis (one of its spatial axes) reads each anchor alone, and is copied as it is (YOLO's
distribution focal loss: a 1 x 1 Conv with weights 0..15 over the softmax of each side's bins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from export.compiler.context import Context, attrs
from export.compiler.values import Tokens
from export.layout import Layout, natural
from export.passes import anchors
from export.passes.base import Pass, new_class, same_class
from export.passes.taps import OUTSIDE, PADDED, conv_pads, keyed_index, window_taps


def is_pointwise(ctx: Context, node: onnx.NodeProto) -> bool:
    weight = ctx.graph.constants.get(node.input[1]) if len(node.input) > 1 else None
    if weight is None or weight.ndim != 4 or weight.shape[2:] != (1, 1):
        return False
    a = attrs(node)
    pads = a.get("pads", [0, 0, 0, 0])
    return tuple(a.get("strides", [1, 1])) == (1, 1) and not any(pads) and a.get("group", 1) == 1 and (
        ctx.hw(node.input[0]) == ctx.hw(node.output[0])
    )


class ConvPass(Pass):
    ops = ("Conv",)

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        producer = ctx.graph.producers.get(node.input[0])
        padded_input = producer is not None and producer.op_type == "Pad"
        if is_pointwise(ctx, node) and not padded_input:
            same_class(ctx, node)
        else:
            new_class(ctx, node)

    def constrain_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        read = anchors.lists_read(ctx, node)
        weight = ctx.graph.constants.get(node.input[1]) if len(node.input) > 1 else None
        if read[0][0] != 0 or len(read) != 1 or weight is None:
            raise ctx.refuse(node, "Conv of an anchor list needs the list as its input and a constant weight")
        source = read[0][1]
        size = weight.ndim
        spatial = source.axis - 2
        if spatial < 0:
            raise ctx.refuse(node, f"Conv over the anchor list's axis {source.axis} (batch or channels) mixes anchors")
        a = attrs(node)
        pads = list(a.get("pads", [0] * 2 * (size - 2)))
        pointwise = weight.shape[2 + spatial] == 1 and list(a.get("strides", [1] * (size - 2)))[spatial] == 1 \
            and pads[spatial] == 0 and pads[spatial + size - 2] == 0
        if not pointwise or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
            raise ctx.refuse(node, "Conv along an anchor list's anchors with a kernel, stride or padding other "
                                   "than 1, 1, 0 there mixes anchors")
        anchors.keep(ctx, node, source.axis, source)

    def emit_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        anchors.copy(ctx, node)

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        x = ctx.tokens(node, 0, allow_pad=True)
        weight = ctx.constant(node, 1, "the weight").astype(np.float32)
        bias = ctx.constant(node, 2, "the bias").astype(np.float32) if len(node.input) > 2 and node.input[2] else None
        if weight.ndim != 4:
            raise ctx.refuse(node, f"weight of rank {weight.ndim}; only 2-D convolutions (NCHW) are supported")
        c_out, c_in_g, kh, kw = weight.shape
        a = attrs(node)
        groups = a.get("group", 1)
        if c_in_g * groups != x.channels:
            raise ctx.refuse(node, f"weight expects {c_in_g * groups} input channels, the map has {x.channels}")
        out_h, out_w = ctx.hw(node.output[0]) if ctx.graph.shapes.get(node.output[0]) else (0, 0)

        if x.pad is None and is_pointwise(ctx, node):
            ctx.set(node.output[0], _pointwise(ctx, x, weight, bias))
            return

        strides = tuple(a.get("strides", [1, 1]))
        dilations = tuple(a.get("dilations", [1, 1]))
        pads = conv_pads(a, (x.height, x.width), (out_h, out_w), (kh, kw), strides, dilations)
        taps = window_taps(x.height, x.width, out_h, out_w, (kh, kw), strides, dilations, pads, x.pad)
        out_layout = ctx.layout_of(node.output[0]) if out_h * out_w > 1 else natural(1, 1)
        fills = []
        if (taps == OUTSIDE).any():
            fills.append((OUTSIDE, 0.0))
        if (taps == PADDED).any():
            fills.append((PADDED, float(x.pad.value)))
        source, rows = ctx.padded(x, tuple(fills)) if fills else (ctx.as3d(x), {})
        index = keyed_index(taps, x.layout, out_layout, rows)  # (HWo, KK)
        taps_of = _Taps(source, index, x, out_layout, kh * kw, out_h * out_w)

        if groups == 1:
            out, flat = _dense(ctx, taps_of, weight, bias), True
        elif c_in_g == 1 and c_out == groups:  # depthwise, multiplier 1
            out, flat = _depthwise(ctx, taps_of, weight, bias), False
        else:
            out, flat = _grouped(ctx, taps_of, weight, bias, groups), False
        ctx.set(node.output[0], Tokens(out, c_out, out_h, out_w, out_layout, flat=flat))


def _pointwise(ctx: Context, x: Tokens, weight: np.ndarray, bias: np.ndarray | None) -> Tokens:
    """A 1 x 1, stride 1, unpadded Conv: one Gemm on the input's layout."""
    b = ctx.b
    inputs = [ctx.as2d(x), b.const(weight[:, :, 0, 0].T.copy(), "weight")]  # (N*HW, Cin) @ (Cin, Cout)
    if bias is not None:
        inputs.append(b.const(bias, "bias"))
    y = b.node("Gemm", inputs, "conv1x1")  # (N*HW, Cout): left flat so activations fuse into the Gemm
    return Tokens(y, weight.shape[0], x.height, x.width, x.layout, flat=True)


@dataclass(frozen=True)
class _Taps:
    """What a windowed Conv gathers: the (padded) input tokens, the keyed tap index (HWo, KK), the layouts."""

    source: str
    index: np.ndarray
    x: Tokens
    out_layout: Layout
    kk: int  # taps per window, kh * kw
    n_out: int  # output positions, HWo


def _dense(ctx: Context, t: _Taps, weight: np.ndarray, bias: np.ndarray | None) -> str:
    """group 1: the gathered taps as rows, one Gemm; (N*HWo, Cout), left flat so activations fuse into the Gemm."""
    b, x, kk = ctx.b, t.x, t.kk
    gathered = ctx.gather(t.source, t.index if kk > 1 else t.index[:, 0], x.layout, t.out_layout)  # (N, HWo, KK, Cin)
    flat = b.reshape(gathered, [-1, kk * x.channels])  # -> (N*HWo, KK*Cin)
    c_out = weight.shape[0]
    w_m = weight.transpose(2, 3, 1, 0).reshape(kk * x.channels, c_out)  # (kh, kw, Cin, Cout) -> (KK*Cin, Cout)
    inputs = [flat, b.const(np.ascontiguousarray(w_m), "weight")]
    if bias is not None:
        inputs.append(b.const(bias, "bias"))
    return b.node("Gemm", inputs, "conv")


def _depthwise(ctx: Context, t: _Taps, weight: np.ndarray, bias: np.ndarray | None) -> str:
    """Depthwise, multiplier 1: the gathered taps times the kernel, summed over taps; (N, HWo, C)."""
    b = ctx.b
    c_out = weight.shape[0]
    gathered = ctx.gather(t.source, t.index, t.x.layout, t.out_layout)  # (N, HWo, KK, C)
    w_d = weight.reshape(c_out, t.kk).T  # (C, 1, kh, kw) -> (KK, C)
    product = b.node("Mul", [gathered, b.const(np.ascontiguousarray(w_d), "weight")], "dw-mul")
    out = b.reduce("ReduceSum", product, [2], keepdims=0, hint="dw-sum")  # -> (N, HWo, C)
    if bias is not None:
        out = b.node("Add", [out, b.const(bias, "bias")], "dw-bias")
    return out


def _grouped(ctx: Context, t: _Taps, weight: np.ndarray, bias: np.ndarray | None, groups: int) -> str:
    """Grouped: one batched MatMul over the groups; (N, HWo, Cout)."""
    b, kk, n_out = ctx.b, t.kk, t.n_out
    c_out, c_in_g = weight.shape[:2]
    c_out_g = c_out // groups
    gathered = ctx.gather(t.source, t.index, t.x.layout, t.out_layout)  # (N, HWo, KK, Cin)
    split = b.reshape(gathered, [-1, n_out, kk, groups, c_in_g])  # -> (N, HWo, KK, G, Cin_g)
    moved = b.transpose(split, [0, 3, 1, 2, 4])  # -> (N, G, HWo, KK, Cin_g)
    rows_g = b.reshape(moved, [-1, groups, n_out, kk * c_in_g])  # -> (N, G, HWo, KK*Cin_g)
    w_g = weight.reshape(groups, c_out_g, c_in_g, kk).transpose(0, 3, 2, 1)  # -> (G, KK, Cin_g, Cout_g)
    w_g = w_g.reshape(groups, kk * c_in_g, c_out_g)  # -> (G, KK*Cin_g, Cout_g)
    y = b.node("MatMul", [rows_g, b.const(np.ascontiguousarray(w_g), "weight")], "gconv")  # (N, G, HWo, Cout_g)
    back = b.transpose(y, [0, 2, 1, 3])  # -> (N, HWo, G, Cout_g)
    out = b.reshape(back, [-1, n_out, c_out])  # -> (N, HWo, Cout)
    if bias is not None:
        out = b.node("Add", [out, b.const(bias, "bias")], "gconv-bias")
    return out
