"""The base of a rewrite pass, the registry that maps operators to passes, and two common constraints.

A pass handles a node with at least one feature-map input. ``constrain`` runs
first over the whole graph and states which tensors must share a layout (a
union-find, :class:`~export.compiler.classes.UnionFind`); ``emit`` then writes
the keyed nodes. A pass declines a node it cannot make exact with
``ctx.refuse(node, reason)``.

:class:`Registry` maps each operator to the one pass that handles it: a second
pass for an operator already handled is refused when it registers, naming both.
"""

from __future__ import annotations

import onnx

from export.compiler.context import Context


class Pass:
    """Base class: the operators handled, the layout constraints, the emission."""

    ops: tuple[str, ...] = ()

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        """Union the layout classes this node ties together; add new classes for its outputs."""

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class Registry:
    """Operator name -> the pass that handles it; one pass per operator."""

    def __init__(self, *passes: type[Pass]) -> None:
        self._passes: dict[str, Pass] = {}
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
            self._passes[op] = instance
        return cls

    def get(self, op: str) -> Pass | None:
        return self._passes.get(op)

    def __contains__(self, op: str) -> bool:
        return op in self._passes

    def ops(self) -> list[str]:
        """Every operator handled, in registration order."""
        return list(self._passes)


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
