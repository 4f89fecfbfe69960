"""The keyed model's outputs: each plain output under its own name, and what a key holder must do to it.

An output whose keyed form is the plain tensor (logits, a pooled vector, anything after a 1 x 1
map) is ``plain``. One whose positions are still scrambled is ``dense``, in its plain shape:
a feature map as (N, C, H, W) (``form`` nchw), a flattened map (flat-chw, flat-hwc), a
channels-last map (channels-last) or a detection head's anchor list (anchors, ``group`` entries
per position), its positions in the layout the manifest names (``layout``); only a key holder
puts it back in order (``edge/restore.py``). An anchor list whose axis is not 1, or that joins
several heads (YOLO's (N, 4 + classes, anchors) over three scales), names its ``axis`` and its
``segments`` (each head's run of entries, its layout and group) instead of one layout. Under
``boundary`` every output is plain. With a fixed batch, the shapes say it.
"""

from __future__ import annotations

from export.compiler.compilation import Compilation
from export.compiler.context import Context
from export.compiler.values import Anchors, ChannelsLast, Flat, Same, Tokens, Value
from export.errors import UnsupportedModel
from export.layout import Layout
from firmware_sim.manifest import LayoutRef, OutputSpec, Segment


def layout_ref(layout: Layout) -> LayoutRef:
    """A layout's public coordinates, for a manifest."""
    return LayoutRef(**layout.describe())


def emit_output(job: Compilation, name: str, value: Value, ctx: Context | None = None) -> OutputSpec:
    """Write output ``name`` from its keyed form ``value``; ``ctx`` (the ``fresh`` context) for feature maps."""
    b, g = job.builder, job.graph
    shape = [g.batch if i == 0 and d is None else d for i, d in enumerate(g.shapes.get(name, ()))]
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
        if value.order not in ("chw", "hwc"):
            raise UnsupportedModel(name, "output", f"a map flattened in {value.order} order is the model's output; "
                                                   "only CHW or HWC flattens can be restored")
        b.node("Identity", [value.name], outputs=[name])
        return OutputSpec(name=name, shape=shape, kind="dense", form=f"flat-{value.order}",
                          layout=layout_ref(value.layout))
    if isinstance(value, ChannelsLast):
        if value.order != "hwc":
            raise UnsupportedModel(name, "output", f"a map transposed to {list(value.perm)} is the model's output; "
                                                   "only channels-last (0, 2, 3, 1) can be restored")
        b.reshape(value.name, [-1, value.height, value.width, value.channels], output=name)
        return OutputSpec(name=name, shape=shape, kind="dense", form="channels-last",
                          layout=layout_ref(value.layout))
    if isinstance(value, Anchors):
        b.node("Identity", [value.name], outputs=[name])
        return anchors_spec(name, shape, value)
    raise AssertionError(type(value))


def anchors_spec(name: str, shape: list, value: Anchors) -> OutputSpec:
    """An anchor list's manifest entry: one head on axis 1 as before (``layout``, ``group``); otherwise its
    ``axis`` and ``segments``."""
    if len(value.segments) == 1 and value.axis == 1:
        (segment,) = value.segments
        return OutputSpec(name=name, shape=shape, kind="dense", form="anchors", layout=layout_ref(segment.layout),
                          group=segment.group)
    segments = [Segment(length=s.length, layout=layout_ref(s.layout), group=s.group) for s in value.segments]
    return OutputSpec(name=name, shape=shape, kind="dense", form="anchors", segments=segments, axis=value.axis)
