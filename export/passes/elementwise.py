"""Element-wise operators between tensors, and Concat on channels.

Add, Sub, Mul, Div, Pow, Max, Min, Sum, Mean combine positions one to one,
so their feature-map operands must be in the same layout: ``constrain`` puts
them in one class (the union-find that makes a residual block's last layer
emit its shortcut's layout). Constants are re-laid for the tokens: per-channel
ones broadcast on the last axis, full-size ones are permuted by the layout.
A 1 x 1 map (a squeeze-and-excitation gate) broadcasts over positions as it is, and so
does a computed (N, C, 1, 1) tensor (a gate that went through a vector form).
Concat on channels (axis 1) becomes a concat on the tokens' last axis.

On anchor lists (``anchors.py``) they are copied as they are: list operands get one layout per
segment (the union-find again), constants that vary along the list's anchors (YOLO's anchor grid,
its strides) are permuted like the anchors, and a Concat along the anchors joins the heads'
segments, each keeping its own layout.
"""

from __future__ import annotations

import onnx

from export.compiler.context import Context, attrs
from export.compiler.values import Same, Tokens
from export.passes import anchors
from export.passes.base import Pass, same_class
from firmware_sim.words import ELEMENTWISE_BINARY


class BinaryPass(Pass):
    ops = ELEMENTWISE_BINARY

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        same_class(ctx, node)

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        operands = [ctx.value(name) for name in node.input]
        tokens = [v for v in operands if isinstance(v, Tokens)]
        if not tokens:  # e.g. a channels-last Transpose of a map, or a flattened map, meeting a constant
            kinds = ", ".join(f"{n!r} ({type(v).__name__})" for n, v in zip(node.input, operands))
            raise ctx.refuse(node, f"operands {kinds}: only feature maps in NCHW, vectors and constants combine")
        maps = [v for v in tokens if v.size > 1]
        like = maps[0] if maps else tokens[0]
        for value in tokens:
            if value.pad is not None:
                raise ctx.refuse(node, "reads the output of a spatial Pad; a Pad must feed a Conv or a pool")
            if value.size > 1 and value.layout is not like.layout:
                raise AssertionError(f"{node.name}: operands in different layouts")  # constrain failed
            if value.size > 1 and (value.height, value.width) != (like.height, like.width):
                raise ctx.refuse(node, "operands of different spatial sizes")
        gates = set()  # computed (N, C, 1, 1) tensors, e.g. a squeeze-and-excitation gate that left the map form
        for name, value in zip(node.input, operands):
            if isinstance(value, Tokens) or name in ctx.graph.constants:
                continue
            shape = ctx.graph.shapes.get(name)
            if isinstance(value, Same) and shape is not None and len(shape) == 4 and tuple(shape[2:]) == (1, 1):
                gates.add(name)
                continue
            raise ctx.refuse(node, f"operand {name!r} ({type(value).__name__}) cannot meet a feature map")
        full_map = any(not isinstance(v, Tokens) and n not in gates and ctx.is_full_map_constant(ctx.graph.constants[n])
                       for n, v in zip(node.input, operands))
        # (N*HW, C) when every map operand is, so a Gemm's activation chain stays fusable; else (N, HW, C)
        flat = bool(maps) and len(maps) == len(tokens) and all(v.flat for v in maps) and not full_map and not gates
        names = []
        for name, value in zip(node.input, operands):
            if isinstance(value, Tokens):
                names.append(value.name if flat else ctx.as3d(value))
            elif name in gates:
                names.append(ctx.b.reshape(value.name, [-1, 1, ctx.graph.shapes[name][1]]))  # (N, C, 1, 1) -> (N, 1, C)
            else:
                names.append(ctx.keyed_constant(node, ctx.graph.constants[name], like))
        channels = max(v.channels for v in tokens)
        out = ctx.b.node(node.op_type, names, node.op_type.lower(), **attrs(node))
        ctx.set(node.output[0], Tokens(out, channels, like.height, like.width, like.layout, flat=flat))

    def constrain_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        anchors.elementwise(ctx, node)

    def emit_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        anchors.copy(ctx, node, operands=True)


class ConcatPass(Pass):
    ops = ("Concat",)

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        same_class(ctx, node)

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        axis = attrs(node).get("axis")
        if axis is None or axis % 4 != 1:
            raise ctx.refuse(node, f"Concat of feature maps on axis {axis}; only channels (axis 1)")
        parts = [ctx.tokens(node, i) for i in range(len(node.input))]
        first = parts[0]
        for part in parts[1:]:
            if part.layout is not first.layout and first.size > 1:
                raise AssertionError(f"{node.name}: concat inputs in different layouts")  # constrain failed
        flat = all(p.flat for p in parts)
        names = [p.name if flat else ctx.as3d(p) for p in parts]
        out = ctx.b.node("Concat", names, "concat", axis=-1)
        ctx.set(node.output[0], Tokens(out, sum(p.channels for p in parts), first.height, first.width, first.layout,
                                       flat=flat))

    def constrain_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        anchors.concat(ctx, node)

    def emit_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        anchors.copy(ctx, node, operands=True)
