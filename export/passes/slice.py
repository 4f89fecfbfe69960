"""Split and Slice on channels: pointwise, so they commute with any layout.

A (N, C, H, W) map is kept as (N, H*W, C) tokens (or (N*H*W, C)); taking channels ``c0:c1`` keeps
every position where it is: ``y'[q, c] = x'[q, c0 + c]``. So a Split on axis 1 (YOLOv8's C2f
blocks) becomes a Split of the tokens' last axis with the same sizes, and a Slice whose only
non-trivial axis is 1 a Slice of the last axis with the same starts, ends and steps. Slicing the
batch or a spatial axis over its full range changes nothing and is allowed; any other slice of
positions (a crop, a stride) moves positions and is refused.

On an anchor list (``anchors.py``) both are copied as they are when they leave the list's axis
whole (a Slice over another axis, or over the whole list axis); a Split along the list's axis is
exact at the boundaries between heads, each part keeping its own segments.

A 1 x 1 map (after global pooling) has no positions to hide: it is sliced as the plain
(N, C, 1, 1) tensor, whatever the axes.
"""

from __future__ import annotations

import numpy as np
import onnx

from export.compiler.context import Context, attrs
from export.compiler.values import Same, Tokens
from export.passes import anchors
from export.passes.base import Pass, same_class


def _plain_1x1(ctx: Context, node: onnx.NodeProto, x: Tokens) -> None:
    """A 1 x 1 map read as the plain tensor: the node copied, its outputs plain."""
    plain = ctx.b.reshape(x.name, [-1, x.channels, 1, 1])  # (N, 1, C) or (N, C) -> (N, C, 1, 1)
    rest = [ctx.value(n).name if n else "" for n in node.input[1:]]
    outs = ctx.b.node(node.op_type, [plain, *rest], node.op_type.lower(), count=len(node.output), **attrs(node))
    for name, out in zip(node.output, [outs] if isinstance(outs, str) else outs):
        ctx.set(name, Same(out))


def _split_sizes(ctx: Context, node: onnx.NodeProto, axis: int) -> list[int]:
    """The plain Split's output sizes along ``axis``, read off its outputs' shapes."""
    return [ctx.graph.shape(name)[axis] for name in node.output]


class SplitPass(Pass):
    ops = ("Split",)

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        same_class(ctx, node)

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        x = ctx.tokens(node)
        if x.size == 1:
            return _plain_1x1(ctx, node, x)
        axis = attrs(node).get("axis", 0)
        if axis % 4 != 1:
            raise ctx.refuse(node, f"Split of a feature map on axis {axis}; only channels (axis 1)")
        sizes = _split_sizes(ctx, node, 1)
        b = ctx.b
        outs = b.node("Split", [x.name, b.ints(sizes, "split")], "split", count=len(sizes), axis=-1)
        for name, out, size in zip(node.output, [outs] if isinstance(outs, str) else outs, sizes):
            ctx.set(name, Tokens(out, size, x.height, x.width, x.layout, flat=x.flat))

    def constrain_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        (_, source), *_ = anchors.lists_read(ctx, node)
        axis = anchors.axis_of(ctx, node, attrs(node).get("axis", 0), anchors.rank(ctx, node.input[0]))
        if axis != source.axis:
            anchors.keep(ctx, node, source.axis, source)
            return
        for name, part in zip(node.output, anchors.split_runs(ctx, node, source, _split_sizes(ctx, node, axis))):
            ctx.lists[name] = part

    def emit_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        anchors.copy(ctx, node)


def _slices(ctx: Context, node: onnx.NodeProto, rank: int) -> dict[int, tuple[int, int, int]]:
    """axis -> (start, end, step) of a Slice whose starts, ends, axes and steps are constants."""
    starts = ctx.constant(node, 1, "the starts").astype(np.int64).ravel()
    ends = ctx.constant(node, 2, "the ends").astype(np.int64).ravel()
    has = [len(node.input) > i and bool(node.input[i]) for i in (3, 4)]
    axes = ctx.constant(node, 3, "the axes").astype(np.int64).ravel() if has[0] else np.arange(len(starts))
    steps = ctx.constant(node, 4, "the steps").astype(np.int64).ravel() if has[1] else np.ones(len(starts), np.int64)
    return {int(a) % rank: (int(s), int(e), int(t)) for a, s, e, t in zip(axes, starts, ends, steps)}


def _whole(size: int, start: int, end: int, step: int) -> bool:
    """The slice keeps every index of an axis of ``size``, in order."""
    return step == 1 and range(size)[slice(start, end, step)] == range(size)


class SlicePass(Pass):
    ops = ("Slice",)

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        same_class(ctx, node)

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        x = ctx.tokens(node)
        if x.size == 1:
            return _plain_1x1(ctx, node, x)
        shape = ctx.graph.shape(node.input[0])
        channels = None
        for axis, (start, end, step) in _slices(ctx, node, 4).items():
            size = shape[axis] if shape[axis] is not None else (ctx.graph.batch or 2**62)  # the batch: any size
            if axis == 1:
                channels = (start, end, step)
            elif not _whole(size, start, end, step):
                what = "the batch" if axis == 0 else "positions"
                raise ctx.refuse(node, f"Slice of {what} (axis {axis}, {start}:{end}:{step}) of a feature map; "
                                       "only channels (axis 1) can be sliced")
        if channels is None:  # every axis whole
            ctx.set(node.output[0], x)
            return
        b = ctx.b
        start, end, step = channels
        out = b.node("Slice", [x.name, b.ints([start]), b.ints([end]), b.ints([-1], "axes"), b.ints([step])], "slice")
        width = ctx.graph.shape(node.output[0])[1]
        ctx.set(node.output[0], Tokens(out, width, x.height, x.width, x.layout, flat=x.flat))

    def constrain_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        (_, source), *_ = anchors.lists_read(ctx, node)
        size = anchors.rank(ctx, node.input[0])
        cut = _slices(ctx, node, size).get(source.axis)
        if cut is not None and not _whole(source.length, *cut):
            raise ctx.refuse(node, f"Slice of an anchor list along its anchors (axis {source.axis}, "
                                   f"{cut[0]}:{cut[1]}:{cut[2]}) moves anchors; only other axes can be sliced")
        anchors.keep(ctx, node, source.axis, source)

    def emit_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        anchors.copy(ctx, node)
