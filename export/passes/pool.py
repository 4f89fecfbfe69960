"""Pooling: MaxPool, AveragePool, global pools and spatial reductions.

A windowed pool is the same gather as a convolution (see ``conv.py``)
followed by a reduction over the taps instead of a matrix product::

    G = Gather(X_padded, index, axis=1)     # (N, HWo, KK, C)
    MaxPool:      ReduceMax(G, axis=2)      # pad rows hold -inf, never the maximum
    AveragePool:  ReduceSum(G, axis=2) * (1 / count[q])

``count[q]``, the divisor of physical output q, follows the plain operator's
own rule (count_include_pad, ceil_mode, clipped windows): it is read off the
plain operator itself, run by onnxruntime on an all-ones map.

Global pools and ReduceMean/ReduceMax/... over (H, W) are layout-invariant:
a reduction over the positions axis, giving a 1 x 1 map or a vector.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from export.compiler.context import Context, attrs
from export.compiler.values import Same, Tokens
from export.layout import natural
from export.passes.base import Pass, new_class
from export.passes.taps import OUTSIDE, PADDED, conv_pads, keyed_index, window_taps
from export.prepare.probe import run_node


def _plain_divisors(node: onnx.NodeProto, opset: int, height: int, width: int) -> np.ndarray:
    """Run the plain AveragePool on ones(1, 1, H, W): output = real taps / divisor."""
    probe = helper.make_node("AveragePool", ["x"], ["y"], **attrs(node))
    return run_node(probe, np.ones((1, 1, height, width), np.float32), opset).reshape(-1)


class WindowPoolPass(Pass):
    ops = ("MaxPool", "AveragePool")

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        new_class(ctx, node)

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        x = ctx.tokens(node, 0, allow_pad=True)
        a = attrs(node)
        if len([o for o in node.output if o]) > 1:
            raise ctx.refuse(node, "MaxPool's Indices output exposes positions; it is not supported")
        if a.get("storage_order", 0):
            raise ctx.refuse(node, "storage_order 1 is not supported")
        kernel = tuple(a["kernel_shape"])
        if len(kernel) != 2:
            raise ctx.refuse(node, f"{len(kernel)}-D pooling; only 2-D (NCHW) is supported")
        strides = tuple(a.get("strides", [1, 1]))
        dilations = tuple(a.get("dilations", [1, 1]))
        out_h, out_w = ctx.hw(node.output[0])
        pads = conv_pads(a, (x.height, x.width), (out_h, out_w), kernel, strides, dilations)
        taps = window_taps(x.height, x.width, out_h, out_w, kernel, strides, dilations, pads, x.pad)
        out_layout = ctx.layout_of(node.output[0]) if out_h * out_w > 1 else natural(1, 1)
        is_max = node.op_type == "MaxPool"
        fills = []
        if (taps == OUTSIDE).any():
            fills.append((OUTSIDE, float("-inf") if is_max else 0.0))
        if (taps == PADDED).any():
            fills.append((PADDED, float(x.pad.value)))
        source, rows = ctx.padded(x, tuple(fills)) if fills else (ctx.as3d(x), {})
        index = keyed_index(taps, x.layout, out_layout, rows)  # (HWo, KK)
        b = ctx.b
        gathered = ctx.gather(source, index, x.layout, out_layout)  # (N, HWo, KK, C)
        if is_max:
            out = b.reduce("ReduceMax", gathered, [2], keepdims=0, hint="maxpool")  # -> (N, HWo, C)
        else:
            real = (taps != OUTSIDE).sum(axis=1)  # taps inside the (explicitly padded) input, logical order
            if x.pad is not None:  # the divisor probe runs on the padded size; the Pad region counts as real
                height = x.height + x.pad.top + x.pad.bottom
                width = x.width + x.pad.left + x.pad.right
            else:
                height, width = x.height, x.width
            ratio = _plain_divisors(node, ctx.graph.opset, height, width)  # real / divisor, logical order
            scale = (ratio / real).astype(np.float32)[out_layout.perm]  # 1 / divisor, physical order
            total = b.reduce("ReduceSum", gathered, [2], keepdims=0, hint="avgpool")  # -> (N, HWo, C)
            out = b.node("Mul", [total, ctx.table(scale.reshape(-1, 1), "avg-scale", out_layout)], "avgpool")
        ctx.set(node.output[0], Tokens(out, x.channels, out_h, out_w, out_layout))


_GLOBAL = {"GlobalAveragePool": "ReduceMean", "GlobalMaxPool": "ReduceMax"}
_REDUCE = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceL1", "ReduceL2", "ReduceLogSumExp",
           "ReduceSumSquare", "ReduceProd", "ReduceLogSum")


class GlobalPoolPass(Pass):
    ops = tuple(_GLOBAL) + _REDUCE

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        x = ctx.tokens(node, 0)
        if node.op_type in _GLOBAL:
            op, keepdims = _GLOBAL[node.op_type], 1
            axes = [2, 3]
        else:
            op = node.op_type
            a = attrs(node)
            keepdims = a.get("keepdims", 1)
            if "axes" in a:
                axes = list(a["axes"])
            elif len(node.input) > 1 and node.input[1]:
                axes = [int(v) for v in ctx.constant(node, 1, "axes")]
            else:
                axes = []
            if not axes and a.get("noop_with_empty_axes", 0):
                ctx.set(node.output[0], x)
                return
            axes = sorted(v % 4 for v in axes) if axes else [0, 1, 2, 3]
        b = ctx.b
        data = ctx.as3d(x)
        if axes == [2, 3]:  # over positions: layout-invariant
            y = b.reduce(op, data, [1], keepdims=keepdims, hint=op.lower())  # (N, 1, C) or (N, C)
            ctx.set(node.output[0], Tokens(y, x.channels, 1, 1, natural(1, 1)) if keepdims else Same(y))
        elif axes == [1] and keepdims:  # over channels: pointwise
            y = b.reduce(op, data, [2], keepdims=1, hint=op.lower())  # (N, HW, 1)
            ctx.set(node.output[0], Tokens(y, 1, x.height, x.width, x.layout))
        elif axes == [1, 2, 3] and not keepdims:
            y = b.reduce(op, data, [1, 2], keepdims=0, hint=op.lower())  # (N,)
            ctx.set(node.output[0], Same(y))
        else:
            raise ctx.refuse(node, f"reduction over axes {axes} (keepdims={keepdims}) of a feature map")

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        if ctx.is_map(node.output[0]):  # a reduction over channels keeps the positions
            ctx.classes.union(node.input[0], node.output[0])
