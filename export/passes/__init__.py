"""Rewrite passes of the ``fresh`` policy: one file per family of operators.

A pass handles a node with at least one feature-map input. ``constrain`` runs
first over the whole graph and states which tensors must share a layout (a
union-find); ``emit`` then writes the keyed nodes. A node whose inputs are all
plain-equivalent (vectors, shapes) is copied as it is, without a pass.
"""

from __future__ import annotations

import onnx

from export.context import Context


class Pass:
    """Base class: the operators handled, the layout constraints, the emission."""

    ops: tuple[str, ...] = ()

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        """Union the layout classes this node ties together; add new classes for its outputs."""

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


REGISTRY: dict[str, Pass] = {}


def register(cls: type[Pass]) -> type[Pass]:
    instance = cls()
    for op in cls.ops:
        REGISTRY[op] = instance
    return cls


def same_class(ctx: Context, node: onnx.NodeProto) -> None:
    """Outputs share the layout of every same-sized feature-map input (element-wise semantics)."""
    maps = [name for name in node.input if ctx.is_map(name)]
    for output in node.output:
        if ctx.is_map(output):
            for name in maps:
                if ctx.hw(name) == ctx.hw(output):
                    ctx.classes.union(name, output)


def new_class(ctx: Context, node: onnx.NodeProto) -> None:
    """The node's output gets a layout of its own (a spatial layer's output layout is free)."""
    if ctx.is_map(node.output[0]):
        ctx.classes.add(node.output[0])


from export.passes import conv, elementwise, flatten, pad, pointwise, pool, resize  # noqa: E402,F401
