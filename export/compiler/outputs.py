"""The keyed model's outputs: each plain output under its own name, and what a key holder must do to it.

An output whose keyed form is the plain tensor (logits, a pooled vector, anything after a 1 x 1
map) is ``plain``. One whose positions are still scrambled is ``dense``, in its plain shape:
a feature map as (N, C, H, W) (``form`` nchw), a flattened map (flat-chw, flat-hwc), a
channels-last map (channels-last) or a detection head's anchors (anchors, ``group`` entries per
position), its positions in the layout the manifest names (``layout``); only a key holder puts
it back in order (``edge/restore.py``). Under ``boundary`` every output is plain.
"""

from __future__ import annotations

from export.compiler.compilation import Compilation
from export.compiler.context import Context
from export.compiler.values import ChannelsLast, Dense, Flat, Same, Tokens, Value
from export.errors import UnsupportedModel
from export.layout import Layout
from firmware_sim.manifest import LayoutRef, OutputSpec


def layout_ref(layout: Layout) -> LayoutRef:
    """A layout's public coordinates, for a manifest."""
    return LayoutRef(**layout.describe())


def emit_output(job: Compilation, name: str, value: Value, ctx: Context | None = None) -> OutputSpec:
    """Write output ``name`` from its keyed form ``value``; ``ctx`` (the ``fresh`` context) for feature maps."""
    b, g = job.builder, job.graph
    shape = list(g.shapes.get(name, ()))
    if isinstance(value, Same):
        if value.name != name:
            b.node("Identity", [value.name], outputs=[name])
        return OutputSpec(name=name, shape=shape, kind="plain")
    if isinstance(value, Tokens):
        if value.pad is not None:
            raise UnsupportedModel(name, "output", "a spatial Pad is the model's output")
        if value.size == 1:
            b.reshape(value.name, [-1, value.channels, 1, 1], output=name)
            return OutputSpec(name=name, shape=shape, kind="plain")
        moved = b.transpose(ctx.as3d(value), [0, 2, 1])  # (N, HW, C) -> (N, C, HW)
        b.reshape(moved, [-1, value.channels, value.height, value.width], output=name)  # -> (N, C, H, W)
        return OutputSpec(name=name, shape=shape, kind="dense", form="nchw", layout=layout_ref(value.layout))
    if isinstance(value, Flat):
        b.node("Identity", [value.name], outputs=[name])
        return OutputSpec(name=name, shape=shape, kind="dense", form=f"flat-{value.order}",
                          layout=layout_ref(value.layout))
    if isinstance(value, ChannelsLast):
        b.reshape(value.name, [-1, value.height, value.width, value.channels], output=name)
        return OutputSpec(name=name, shape=shape, kind="dense", form="channels-last",
                          layout=layout_ref(value.layout))
    if isinstance(value, Dense):
        b.node("Identity", [value.name], outputs=[name])
        return OutputSpec(name=name, shape=shape, kind="dense", form="anchors", layout=layout_ref(value.layout),
                          group=value.group)
    raise AssertionError(type(value))
