"""Anchor lists: tensors one of whose axes runs over the positions of one or more feature maps.

A detection head turns its maps into lists with one or more entries per position: an SSD head
reshapes a channels-last map to (N, H*W*A, K), YOLO reshapes each scale's (N, C, H, W) to
(N, C, H*W) and concatenates the scales along that axis. Along the list's axis, segment s (one
map: n_s positions, g_s entries per position, starting at o_s) holds plain entry
``o_s + a*g_s + r`` for logical position a. The keyed list is the plain tensor with that axis
permuted: keyed entry ``o_s + q*g_s + r`` holds plain entry ``o_s + L_s(q)*g_s + r``, L_s the
map's layout, so ``x' = x[pi]`` along the axis with ``pi = concat_s(o_s + L_s(q)*g_s + r)``.

An operator that treats every entry of the axis alike and on its own commutes with pi:
``f(x[pi]) = f(x)[pi]``. So a node that reads an anchor list is copied as it is, reading the keyed
tensor, when it is (each pass checks its own case and names the reason when it is not):

- element-wise (activations, Add, Mul, Sub, Div, ...): an operand that varies along the axis is
  permuted the same way, ``c[pi]``: a constant when the model is compiled (YOLO's anchor grid and
  strides), a computed tensor by a Gather with pi;
- along other axes: Softmax, LogSoftmax, Hardmax, Slice, Split, Concat; a 1 x 1, stride-1 Conv
  whose spatial axes include the list's (YOLO's distribution-focal-loss Conv); a MatMul that
  contracts another axis with a constant;
- a Reshape, Flatten or Transpose that keeps the axis whole: a Transpose moves it to
  ``perm.index(axis)``; a reshape keeps it when some output axis k spans the same elements
  (``prod(out[k:]) == prod(in[axis:])``) and each position's block of ``g_s * stride`` elements
  is whole entries of k (stride: the product of the dimensions after an axis); each segment's
  group becomes ``g_s * stride_in / stride_out``.

Concat along the axis concatenates the segments (YOLO's three scales, each in its own layout).
Tensors combined along another axis (a scale's boxes and scores, a box's two halves) must have
the same segments: ``constrain`` puts their maps in one layout class. Under ``fresh`` a YOLO
export's in-graph decode thus gives the plain boxes (cx, cy, w, h in input pixels) and scores,
the anchors in a keyed order; NMS does not depend on the order, so the detections equal the
plain model's with nothing restored. The manifest records the segments (``OutputSpec.segments``,
``axis``), from which a key holder restores the order, segment by segment (``edge/restore.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from export.compiler.context import Context, attrs
from export.compiler.values import Anchors, Same, Segment
from firmware_sim.manifest import shape_text


@dataclass(frozen=True)
class Run:
    """Constrain time: ``length`` entries of a list's axis from the positions of map ``member``'s class."""

    length: int
    member: str
    group: int = 1


@dataclass(frozen=True)
class ListAxis:
    axis: int
    runs: tuple[Run, ...]

    @property
    def length(self) -> int:
        return sum(r.length for r in self.runs)


# -- constrain ----------------------------------------------------------------------------------------------------

def lists_read(ctx: Context, node: onnx.NodeProto) -> list[tuple[int, ListAxis]]:
    """(input index, list) of every anchor list the node reads; a node that also reads a map is refused."""
    for name in node.input:
        if ctx.is_map(name):
            raise ctx.refuse(node, f"combines the feature map {name!r} with an anchor list")
    return [(i, ctx.lists[name]) for i, name in enumerate(node.input) if name in ctx.lists]


def rank(ctx: Context, name: str) -> int:
    return len(ctx.graph.shape(name))


def axis_of(ctx: Context, node: onnx.NodeProto, axis: int, size: int) -> int:
    """An attribute axis, made non-negative for a tensor of rank ``size``."""
    if not -size <= axis < size:
        raise ctx.refuse(node, f"axis {axis} is out of range for rank {size}")
    return axis % size


def start(ctx: Context, output: str, axis: int, member: str, length: int, group: int = 1) -> None:
    """``output`` is a new anchor list: ``length`` entries along ``axis`` from map ``member``'s positions."""
    ctx.lists[output] = ListAxis(axis, (Run(length, member, group),))


def tie(ctx: Context, node: onnx.NodeProto, first: ListAxis, other: ListAxis) -> None:
    """Two lists combined entry by entry: the same segments, their maps in one layout class."""
    if [(r.length, r.group) for r in first.runs] != [(r.length, r.group) for r in other.runs]:
        raise ctx.refuse(node, "combines anchor lists whose segments differ "
                               f"({_describe(first)} and {_describe(other)})")
    for a, b in zip(first.runs, other.runs):
        ctx.classes.union(a.member, b.member)


def keep(ctx: Context, node: onnx.NodeProto, axis: int, source: ListAxis | None = None) -> None:
    """Every output is a list with ``source``'s (by default: the first list input's) segments along ``axis``."""
    source = source or lists_read(ctx, node)[0][1]
    for name in node.output:
        if name:
            ctx.lists[name] = ListAxis(axis, source.runs)


def elementwise(ctx: Context, node: onnx.NodeProto, along: int | None = None) -> None:
    """An element-wise node (broadcasting): list operands tied, the output a list. ``along``: the node works along
    that attribute axis (Softmax's), which must not be the list's."""
    read = lists_read(ctx, node)
    out_rank = rank(ctx, node.output[0])
    axes = {lst.axis + out_rank - rank(ctx, node.input[i]) for i, lst in read}
    if len(axes) != 1:
        raise ctx.refuse(node, "its anchor-list operands run over positions along different axes")
    axis = axes.pop()
    if along is not None and axis_of(ctx, node, along, out_rank) == axis:
        raise ctx.refuse(node, f"{node.op_type} along the anchor axis ({axis}) mixes positions")
    for _, other in read[1:]:
        tie(ctx, node, read[0][1], other)
    keep(ctx, node, axis, read[0][1])


def concat(ctx: Context, node: onnx.NodeProto) -> None:
    """Concat along the list's axis joins the segments; along another axis it is element-wise."""
    read = lists_read(ctx, node)
    out_rank = rank(ctx, node.output[0])
    axis = axis_of(ctx, node, attrs(node).get("axis", 0), out_rank)
    if axis != read[0][1].axis:
        elementwise(ctx, node)
        return
    if len(read) != len([n for n in node.input if n]) or any(lst.axis != axis for _, lst in read):
        raise ctx.refuse(node, "concatenates an anchor list along its anchors with a tensor that is not one")
    ctx.lists[node.output[0]] = ListAxis(axis, tuple(run for _, lst in read for run in lst.runs))


def reshaped(ctx: Context, node: onnx.NodeProto) -> None:
    """A Reshape or Flatten: the axis must stay whole (module docstring)."""
    (_, source), *_ = lists_read(ctx, node)
    shape_in, shape_out = ctx.graph.shape(node.input[0]), ctx.graph.shape(node.output[0])
    runs = regrouped(source, shape_in, shape_out)
    if runs is None:
        raise ctx.refuse(node, f"reshape of an anchor list {shape_text(shape_in)} (anchors on axis {source.axis}) to "
                               f"{shape_text(shape_out)} mixes its anchors with other entries")
    ctx.lists[node.output[0]] = runs


def regrouped(source: ListAxis, shape_in: tuple, shape_out: tuple) -> ListAxis | None:
    tail_in = shape_in[source.axis:]
    if any(d is None for d in tail_in[1:]):
        return None
    stride_in = int(np.prod(tail_in[1:], dtype=np.int64))
    total = stride_in * source.length
    for k in range(len(shape_out)):
        tail = shape_out[k:]
        if any(d is None for d in tail) or int(np.prod(tail, dtype=np.int64)) != total:
            continue
        stride_out = int(np.prod(tail[1:], dtype=np.int64))
        if all(run.group * stride_in % stride_out == 0 for run in source.runs):
            runs = []
            for run in source.runs:
                group = run.group * stride_in // stride_out
                runs.append(Run(run.length // run.group * group, run.member, group))
            return ListAxis(k, tuple(runs))
    return None


def split_runs(ctx: Context, node: onnx.NodeProto, source: ListAxis, sizes: list[int]) -> list[ListAxis]:
    """A Split along the list's axis at segment boundaries: each part keeps its whole segments."""
    parts, runs = [], list(source.runs)
    for size in sizes:
        taken, total = [], 0
        while runs and total < size:
            taken.append(runs.pop(0))
            total += taken[-1].length
        if total != size:
            raise ctx.refuse(node, f"splits an anchor list's anchors ({_describe(source)}) inside a segment; "
                                   "only at the boundaries between heads")
        parts.append(ListAxis(source.axis, tuple(taken)))
    return parts


# -- emit ---------------------------------------------------------------------------------------------------------

def value(ctx: Context, keyed: str, axis: ListAxis) -> Anchors:
    """The keyed form of a list: its segments in the layouts their maps' classes were given."""
    return Anchors(keyed, axis.axis, tuple(Segment(r.length, ctx.layout_of(r.member), r.group) for r in axis.runs))


def copy(ctx: Context, node: onnx.NodeProto, operands: bool = False) -> None:
    """The node as it is, reading the keyed inputs; ``operands``: inputs that broadcast against the list (an
    element-wise node's, a Concat's) and vary along its axis are permuted with it."""
    inputs = []
    out_list = ctx.lists.get(node.output[0]) or next(ctx.lists[n] for n in node.input if n in ctx.lists)
    index = value(ctx, "", out_list).logical_index() if operands else None
    for name in node.input:
        if not name:
            inputs.append("")
            continue
        v = ctx.value(name)
        if isinstance(v, Anchors):
            inputs.append(v.name)
        elif not isinstance(v, Same):
            raise ctx.refuse(node, f"input {name!r} is a {type(v).__name__}; an anchor list meets only lists, "
                                   "constants and plain tensors")
        elif operands:
            inputs.append(_permuted(ctx, node, name, out_list, index))
        else:
            inputs.append(v.name)
    outputs = [ctx.b.fresh(node.op_type.lower()) if name else "" for name in node.output]
    keyed = onnx.NodeProto()
    keyed.CopyFrom(node)
    keyed.name = ctx.b.fresh(node.op_type)
    del keyed.input[:]
    keyed.input.extend(inputs)
    del keyed.output[:]
    keyed.output.extend(outputs)
    ctx.b.nodes.append(keyed)
    for name, out in zip(node.output, outputs):
        if name:
            ctx.set(name, value(ctx, out, ctx.lists[name]) if name in ctx.lists else Same(out))


def _permuted(ctx: Context, node: onnx.NodeProto, name: str, out: ListAxis, index: np.ndarray) -> str:
    """Operand ``name`` permuted along the list's axis, where it varies along it (else as it is)."""
    constant = ctx.graph.constants.get(name)
    shape = np.shape(constant) if constant is not None else ctx.graph.shape(name)
    k = out.axis - (rank(ctx, node.output[0]) - len(shape))  # right-aligned broadcasting
    if k < 0 or shape[k] == 1:
        return name
    if shape[k] != out.length:
        raise ctx.refuse(node, f"operand {name!r} {shape_text(shape)} does not match the anchor list's "
                               f"{out.length} anchors")
    layouts = [ctx.layout_of(r.member) for r in out.runs]
    if constant is not None:  # anchor grids, strides: permuted once, here
        return ctx.table(np.take(constant, index, axis=k), "anchor-const", *layouts)
    table = ctx.table(index.astype(np.int64), "anchor-index", *layouts)
    return ctx.b.node("Gather", [name, table], "anchor-operand", axis=k)


def _describe(lst: ListAxis) -> str:
    return "+".join(f"{r.length}" + (f"x{r.group}" if r.group > 1 else "") for r in lst.runs)
