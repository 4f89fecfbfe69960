"""The base of a rewrite pass, the registry that maps operators to passes, and two common constraints.

A pass handles a node with at least one feature-map input. ``constrain`` runs
first over the whole graph and states which tensors must share a layout (a
union-find, :class:`~export.compiler.classes.UnionFind`); ``emit`` then writes
the keyed nodes. A pass declines a node it cannot make exact with
``ctx.refuse(node, reason)``.

A node that reads an anchor list (``export/passes/anchors.py``: a detection head's positions along
one axis) goes to ``constrain_list`` and ``emit_list`` instead; a pass that does not define them
refuses it.

:class:`Registry` maps each operator to the one pass that handles it: a second
pass for an operator already handled is refused when it registers, naming both.
"""

from __future__ import annotations

import onnx

from export.compiler.context import Context
from firmware_sim import registry


class Pass:
    """Base class: the operators handled, the layout constraints, the emission."""

    ops: tuple[str, ...] = ()

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        """Union the layout classes this node ties together; add new classes for its outputs."""

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def constrain_list(self, ctx: Context, node: onnx.NodeProto) -> None:
        """The same for a node that reads an anchor list: record its outputs' lists (``anchors.py``)."""
        raise ctx.refuse(node, f"{node.op_type} on an anchor list (a detection head's positions) is not supported "
                               "by the keyed compiler")

    def emit_list(self, ctx: Context, node: onnx.NodeProto) -> None:  # pragma: no cover - constrain refused it
        raise ctx.refuse(node, f"{node.op_type} on an anchor list is not supported by the keyed compiler")


class Registry:
    """Operator name -> the pass that handles it; one pass per operator (a :class:`firmware_sim.registry.Registry`
    of pass instances, with the checks that keep a refused pass from registering any of its operators)."""

    def __init__(self, *passes: type[Pass]) -> None:
        self._passes: registry.Registry[Pass] = registry.Registry("operator")
        for cls in passes:
            self.register(cls)

    def register(self, cls: type[Pass]) -> type[Pass]:
        """Add ``cls`` for each of its ``ops``; refuse (ValueError, nothing added) an operator already handled."""
        if not cls.ops:
            raise ValueError(f"pass {cls.__name__} names no operators (its `ops` is empty)")
        for op in cls.ops:
            if op in self._passes:
                raise ValueError(f"pass {cls.__name__} cannot register {op!r}: "
                                 f"{type(self._passes[op]).__name__} handles it already (one pass per operator)")
        if len(set(cls.ops)) != len(cls.ops):
            raise ValueError(f"pass {cls.__name__} names an operator twice in its `ops`")
        instance = cls()
        for op in cls.ops:
            self._passes.add(op, instance)
        return cls

    def get(self, op: str) -> Pass | None:
        return self._passes.get(op)

    def __contains__(self, op: str) -> bool:
        return op in self._passes

    def ops(self) -> list[str]:
        """Every operator handled, in registration order."""
        return list(self._passes)


def same_class(ctx: Context, node: onnx.NodeProto) -> None:
    """Outputs share the layout of every same-sized feature-map input (element-wise semantics); an activation of a
    Transpose of a map is still that map transposed (so that a head can reshape it into anchors)."""
    maps = [name for name in node.input if ctx.is_map(name)]
    source = next((ctx.sources[name] for name in node.input if name in ctx.sources), None)
    for output in node.output:
        if source is not None and output:
            ctx.sources[output] = source
        if ctx.is_map(output):
            for name in maps:
                if ctx.hw(name) == ctx.hw(output):
                    ctx.classes.union(name, output)


def new_class(ctx: Context, node: onnx.NodeProto) -> None:
    """The node's output gets a layout of its own (a spatial layer's output layout is free)."""
    if ctx.is_map(node.output[0]):
        ctx.classes.add(node.output[0])
