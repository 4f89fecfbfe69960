"""Flatten, Reshape and Transpose of feature maps, and the Gemm/MatMul that reads them.

Flattening a C x H x W map gives features ``c*H*W + a`` (or ``a*C + c`` after
a channels-last Transpose). The keyed map flattens to features ``q*C + c`` in
layout order, so feature ``q*C + c`` holds plain feature
``plain_index(q, c)``. Rather than move the data back, the Gemm or MatMul that
reads it gets its weight rows permuted the same way: ``W'[k] = W[plain_index[k]]``.

A channels-last Transpose (perm 0,2,3,1) is free: the tokens already are
(N, H*W, C). Reshaping that into (N, H*W*A, K) (a detection head's anchors)
gives a dense output whose order follows the layout (its position axis
carries A consecutive entries per position). A 1 x 1 map flattens to a plain
vector; reshaped to (N, C, 1, 1) it stays a 1 x 1 map, and any other reshape of
it reads the plain tensor. Shape of a feature map is re-emitted with the plain shape.
"""

from __future__ import annotations

import numpy as np
import onnx

from export.compiler.context import Context, attrs
from export.compiler.values import ChannelsLast, Dense, Flat, Same, Tokens
from export.passes.base import Pass


def _target(ctx: Context, node: onnx.NodeProto) -> tuple:
    return ctx.graph.shape(node.output[0])


class FlattenPass(Pass):
    ops = ("Flatten", "Reshape")

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        value = ctx.value(node.input[0])
        target = _target(ctx, node)
        b = ctx.b
        if isinstance(value, Tokens):
            if value.pad is not None:
                raise ctx.refuse(node, "reads the output of a spatial Pad")
            if value.size == 1 and not (len(target) == 2 and target[1] == value.channels):
                # a 1 x 1 map has no positions to hide: (N, C, 1, 1) stays a 1x1 map (tf2onnx writes a Transpose
                # of one as a Reshape); any other target is taken from the plain tensor
                if tuple(target) == (None, value.channels, 1, 1):
                    ctx.set(node.output[0], value)
                    return
                plain = b.reshape(value.name, [-1, value.channels, 1, 1])  # (N, 1, C) or (N, C) -> (N, C, 1, 1)
                rest = [ctx.value(n).name if n else "" for n in node.input[1:]]
                out = b.node(node.op_type, [plain, *rest], node.op_type.lower(), **attrs(node))
                ctx.set(node.output[0], Same(out))
                return
            if node.op_type == "Flatten" and attrs(node).get("axis", 1) != 1:
                raise ctx.refuse(node, "Flatten of a feature map on an axis other than 1")
            features = value.channels * value.size
            if len(target) != 2 or target[0] is not None or target[1] != features:
                raise ctx.refuse(node, f"reshape of a {value.channels}x{value.height}x{value.width} map to "
                                       f"{target}; only flattening to (N, C*H*W) is supported")
            out = b.reshape(value.name, [-1, features])  # (N, HW, C) or (N*HW, C) -> (N, HW*C)
            if value.size == 1:
                ctx.set(node.output[0], Same(out))
            else:
                ctx.set(node.output[0], Flat(out, value.channels, value.height, value.width, value.layout, "chw"))
        elif isinstance(value, ChannelsLast):
            positions = value.height * value.width
            if target[0] is not None:
                raise ctx.refuse(node, f"reshape to {target} changes the batch axis")
            if len(target) == 2 and target[1] == positions * value.channels:
                out = b.reshape(value.name, [-1, positions * value.channels])
                ctx.set(node.output[0], Flat(out, value.channels, value.height, value.width, value.layout, "hwc"))
                return
            # a detection head: the leading non-batch axis runs over positions x A, the rest splits C
            if len(target) >= 3 and target[1] % positions == 0 and value.channels % (target[1] // positions) == 0 \
                    and int(np.prod(target[1:])) == positions * value.channels:
                group = target[1] // positions
                out = b.reshape(value.name, [-1, *target[1:]])
                ctx.set(node.output[0], Dense(out, target, value.layout, group, 1))
                return
            raise ctx.refuse(node, f"reshape of a channels-last {value.height}x{value.width}x{value.channels} map "
                                   f"to {target}; only (N, H*W*C) or (N, H*W*A, ...) anchor lists are supported")
        else:
            raise ctx.refuse(node, f"reshape of a {type(value).__name__} value")


class TransposePass(Pass):
    ops = ("Transpose",)

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        x = ctx.tokens(node)
        perm = list(attrs(node).get("perm", [3, 2, 1, 0]))
        if perm != [0, 2, 3, 1]:
            raise ctx.refuse(node, f"Transpose {perm} of a feature map; only channels-last (0, 2, 3, 1)")
        ctx.set(node.output[0], ChannelsLast(ctx.as3d(x), x.channels, x.height, x.width, x.layout))


class DensePass(Pass):
    ops = ("Gemm", "MatMul")

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        value = ctx.value(node.input[0])
        if not isinstance(value, Flat):
            raise ctx.refuse(node, f"{node.op_type} of a {type(value).__name__}; a feature map must be flattened first")
        for name in node.input[1:]:
            if name and not isinstance(ctx.value(name), Same):
                raise ctx.refuse(node, f"operand {name!r} is not a plain tensor")
        weight = ctx.constant(node, 1, "the weight")
        a = attrs(node)
        if node.op_type == "Gemm" and a.get("transA", 0):
            raise ctx.refuse(node, "Gemm with transA=1 on flattened features")
        index = value.plain_index()
        trans_b = node.op_type == "Gemm" and a.get("transB", 0)
        if weight.ndim != 2:
            raise ctx.refuse(node, f"weight of rank {weight.ndim}")
        permuted = weight[:, index] if trans_b else weight[index]
        b = ctx.b
        inputs = [value.name, b.const(np.ascontiguousarray(permuted), "dense-weight")]
        inputs += [ctx.value(n).name if n else "" for n in node.input[2:]]
        out = b.node(node.op_type, inputs, node.op_type.lower(), **a)
        ctx.set(node.output[0], Same(out))


class ShapePass(Pass):
    ops = ("Shape",)

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        value = ctx.value(node.input[0])
        if isinstance(value, Same):
            raise AssertionError("plain Shape handled by the copy path")
        plain = ctx.graph.shape(node.input[0])
        b = ctx.b
        data = ctx.as3d(value) if isinstance(value, Tokens) else value.name
        batch = b.node("Shape", [data], "shape")
        batch = b.node("Slice", [batch, b.ints([0]), b.ints([1])], "batch")
        full = b.node("Concat", [batch, b.ints(list(plain[1:]))], "plain-shape", axis=0)
        a = attrs(node)
        if a.get("start", 0) or "end" in a:
            start, end = a.get("start", 0), a.get("end", len(plain))
            full = b.node("Slice", [full, b.ints([start]), b.ints([end])], "shape-slice")
        ctx.set(node.output[0], Same(full))
