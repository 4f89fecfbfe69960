"""Pointwise operators: they act on each position alone, so they commute with any layout.

Activations run unchanged on (N, H*W, C) tokens. Operators with a channel
axis move it from 1 (NCHW) to the last axis of the tokens: Softmax,
LogSoftmax and Hardmax over channels, BatchNormalization (as y = x * a + b
with a = scale / sqrt(var + eps), b = B - mean * a), PRelu's per-channel slope.

On an anchor list (``anchors.py``) activations are copied as they are, and Softmax,
LogSoftmax and Hardmax too over any axis but the list's (YOLO's distribution focal loss
takes a softmax over the 16 bins of each box side, per anchor).
"""

from __future__ import annotations

import numpy as np
import onnx

from export.compiler.context import Context, attrs
from export.compiler.values import Same, Tokens
from export.passes import anchors
from export.passes.base import Pass, same_class
from firmware_sim.words import ELEMENTWISE_UNARY


def _replace(value, name: str):
    """The same kind of value, holding data ``name``."""
    from dataclasses import replace

    return replace(value, name=name)


class UnaryPass(Pass):
    ops = ELEMENTWISE_UNARY

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        same_class(ctx, node)

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        value = ctx.value(node.input[0])
        if isinstance(value, Tokens) and value.pad is not None:
            raise ctx.refuse(node, "reads the output of a spatial Pad; a Pad must feed a Conv or a pool")
        extra = []
        for name in node.input[1:]:  # Clip's min/max, Dropout's ratio: scalars
            if name and not isinstance(ctx.value(name), Same):
                raise ctx.refuse(node, f"operand {name!r} is a feature map; expected a scalar")
            extra.append(ctx.value(name).name if name else "")
        if node.op_type == "Dropout" and len([o for o in node.output if o]) > 1:
            raise ctx.refuse(node, "Dropout's mask output is not supported")
        out = ctx.b.node(node.op_type, [value.name, *extra], node.op_type.lower(), **attrs(node))
        ctx.set(node.output[0], _replace(value, out))

    def constrain_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        if node.op_type == "Dropout" and len([o for o in node.output if o]) > 1:
            raise ctx.refuse(node, "Dropout's mask output is not supported")
        anchors.elementwise(ctx, node)

    def emit_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        anchors.copy(ctx, node)


class ChannelSoftmaxPass(Pass):
    ops = ("Softmax", "LogSoftmax", "Hardmax")

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        same_class(ctx, node)

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        x = ctx.tokens(node)
        axis = attrs(node).get("axis", -1)
        if ctx.graph.opset < 13 or axis % 4 != 1:
            raise ctx.refuse(node, f"{node.op_type} over axis {axis} of a feature map; only the channel axis (1)")
        out = ctx.b.node(node.op_type, [x.name], node.op_type.lower(), axis=-1)
        ctx.set(node.output[0], _replace(x, out))

    def constrain_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        (_, source), *_ = anchors.lists_read(ctx, node)
        size = anchors.rank(ctx, node.input[0])
        axis = anchors.axis_of(ctx, node, attrs(node).get("axis", -1 if ctx.graph.opset >= 13 else 1), size)
        if ctx.graph.opset < 13 and source.axis >= axis:  # opset < 13 flattens the axes from `axis` on
            raise ctx.refuse(node, f"{node.op_type} (opset {ctx.graph.opset}) over axes {axis}.. includes the "
                                   "anchor list's anchors")
        anchors.elementwise(ctx, node, along=axis)

    def emit_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        anchors.copy(ctx, node)


class BatchNormPass(Pass):
    ops = ("BatchNormalization",)

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        same_class(ctx, node)

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        x = ctx.tokens(node)
        if attrs(node).get("training_mode", 0) or len([o for o in node.output if o]) > 1:
            raise ctx.refuse(node, "BatchNormalization in training mode")
        eps = attrs(node).get("epsilon", 1e-5)
        scale, bias, mean, var = (ctx.constant(node, i, what).astype(np.float64)
                                  for i, what in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
        a = scale / np.sqrt(var + eps)
        shift = bias - mean * a
        b = ctx.b
        y = b.node("Mul", [x.name, b.const(a.astype(np.float32), "bn-scale")], "bn")
        y = b.node("Add", [y, b.const(shift.astype(np.float32), "bn-shift")], "bn")
        ctx.set(node.output[0], _replace(x, y))


class PReluPass(Pass):
    ops = ("PRelu",)

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        same_class(ctx, node)

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        x = ctx.tokens(node)
        slope = ctx.constant(node, 1, "the slope")
        if ctx.is_full_map_constant(slope):  # a slope per position needs the (N, HW, C) form
            x = Tokens(ctx.as3d(x), x.channels, x.height, x.width, x.layout)
        out = ctx.b.node("PRelu", [x.name, ctx.keyed_constant(node, slope, x)], "prelu")
        ctx.set(node.output[0], _replace(x, out))

