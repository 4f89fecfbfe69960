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
from export.compiler.values import ChannelsLast, Flat, Same, Tokens
from export.passes import anchors
from export.passes.base import Pass


def _target(ctx: Context, node: onnx.NodeProto) -> tuple:
    return ctx.graph.shape(node.output[0])


def _positions_last(shape_in: tuple, target: tuple) -> bool:
    """(N, C, H, W) -> (N, c1, ..., ck, H*W) with c1 * ... * ck = C: the positions become the last axis."""
    c, h, w = shape_in[1:]
    return len(target) >= 3 and target[0] is None and target[-1] == h * w and None not in target[1:] \
        and int(np.prod(target[1:-1])) == c


def _anchor_group(shape_in: tuple, target: tuple) -> int | None:
    """A channels-last (N, H, W, C) reshaped to (N, H*W*A, ...): A entries per position, else None."""
    positions, channels = shape_in[1] * shape_in[2], shape_in[3]
    if len(target) < 3 or target[0] is not None or None in target[1:] or target[1] % positions:
        return None
    group = target[1] // positions
    if channels % group or int(np.prod(target[1:])) != positions * channels:
        return None
    return group


class FlattenPass(Pass):
    ops = ("Flatten", "Reshape")

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        """Reshapes that start an anchor list: of a map, positions last; of a channels-last Transpose, anchors."""
        source, target = node.input[0], _target(ctx, node)
        if node.op_type != "Reshape":
            return
        if source in ctx.sources:
            origin, perm = ctx.sources[source]
            group = _anchor_group(ctx.graph.shape(source), target) if tuple(perm) == (0, 2, 3, 1) else None
            if group is not None:
                anchors.start(ctx, node.output[0], 1, origin, target[1], group)
        elif ctx.is_map(source) and _positions_last(ctx.graph.shape(source), target):
            anchors.start(ctx, node.output[0], len(target) - 1, source, target[-1])

    def constrain_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        anchors.reshaped(ctx, node)

    def emit_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        anchors.copy(ctx, node)

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
            if node.output[0] in ctx.lists:  # (N, C, H, W) -> (N, C.., HW): an anchor list, positions last
                if ctx.layout_of(node.input[0]) is not value.layout:
                    raise AssertionError("the map's layout is not its class's")
                moved = b.transpose(ctx.as3d(value), [0, 2, 1])  # (N, HW, C) -> (N, C, HW)
                out = b.reshape(moved, [-1, *target[1:]])  # -> (N, c1, ..., ck, HW)
                ctx.set(node.output[0], anchors.value(ctx, out, ctx.lists[node.output[0]]))
                return
            features = value.channels * value.size
            if len(target) != 2 or target[0] is not None or target[1] != features:
                raise ctx.refuse(node, f"reshape of a {value.channels}x{value.height}x{value.width} map to "
                                       f"{target}; only flattening to (N, C*H*W) or (N, C, H*W) is supported")
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
                ctx.set(node.output[0], Flat(out, value.channels, value.height, value.width, value.layout,
                                             value.order))
                return
            if node.output[0] in ctx.lists:  # a detection head: the leading non-batch axis runs over positions x A
                out = b.reshape(value.name, [-1, *target[1:]])
                ctx.set(node.output[0], anchors.value(ctx, out, ctx.lists[node.output[0]]))
                return
            if value.order != "hwc":
                raise ctx.refuse(node, f"reshape of a map transposed to {list(value.perm)} to {target}; only "
                                       "flattening it to (N, C*H*W) is supported")
            raise ctx.refuse(node, f"reshape of a channels-last {value.height}x{value.width}x{value.channels} map "
                                   f"to {target}; only (N, H*W*C) or (N, H*W*A, ...) anchor lists are supported")
        else:
            raise ctx.refuse(node, f"reshape of a {type(value).__name__} value")


def _perm(ctx: Context, node: onnx.NodeProto) -> list[int]:
    size = len(ctx.graph.shape(node.input[0]))
    return list(attrs(node).get("perm", list(range(size))[::-1]))


class TransposePass(Pass):
    ops = ("Transpose",)

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        if ctx.is_map(node.input[0]):
            ctx.sources[node.output[0]] = (node.input[0], tuple(_perm(ctx, node)))

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        x = ctx.tokens(node)
        perm = _perm(ctx, node)
        readers = ctx.graph.consumers.get(node.output[0], [])
        flattened = node.output[0] not in ctx.graph.outputs and all(r.op_type in ("Flatten", "Reshape")
                                                                    for r in readers)
        if perm != [0, 2, 3, 1] and not (perm[0] == 0 and sorted(perm) == [0, 1, 2, 3] and flattened):
            raise ctx.refuse(node, f"Transpose {perm} of a feature map; only channels-last (0, 2, 3, 1), or any "
                                   "permutation that keeps the batch first before a Flatten or Reshape into a "
                                   "Gemm or MatMul")
        ctx.set(node.output[0], ChannelsLast(ctx.as3d(x), x.channels, x.height, x.width, x.layout, tuple(perm)))

    def constrain_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        (_, source), *_ = anchors.lists_read(ctx, node)
        anchors.keep(ctx, node, _perm(ctx, node).index(source.axis), source)

    def emit_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        anchors.copy(ctx, node)


class DensePass(Pass):
    ops = ("Gemm", "MatMul")

    def constrain_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        """MatMul(list, W) or MatMul(W, list) with a constant W of rank <= 2 contracting another axis."""
        read = anchors.lists_read(ctx, node)
        other = node.input[1 - read[0][0]]
        weight = ctx.graph.constants.get(other)
        if node.op_type != "MatMul" or len(read) != 1 or weight is None or weight.ndim > 2:
            raise ctx.refuse(node, f"{node.op_type} of an anchor list; only a MatMul with a constant of rank <= 2")
        (index, source), = read
        size = anchors.rank(ctx, node.input[index])
        contracted = size - 1 if index == 0 else size - 2
        if source.axis == contracted:
            raise ctx.refuse(node, "MatMul contracts the anchor list's anchors (it would mix positions)")
        last = index == 1 and source.axis == size - 1  # MatMul(W, list): the list's last axis stays last
        anchors.keep(ctx, node, anchors.rank(ctx, node.output[0]) - 1 if last else source.axis, source)

    def emit_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        anchors.copy(ctx, node)

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

    def constrain_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        """The keyed list has the plain shape: nothing to record."""

    def emit_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        anchors.copy(ctx, node)

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
