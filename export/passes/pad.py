"""Pad: constant padding of a feature map.

Padding on the channel axis is pointwise (a Pad of the tokens' last axis).
Spatial padding is not applied to the data: the map's logical frame grows and
the next spatial layer (Conv or pool) reads the border through its index table
from a row holding the Pad's value (``taps.PADDED``). Reflect and edge padding,
negative pads (crops) and padding of the batch are declined.
"""

from __future__ import annotations

import numpy as np
import onnx

from export.compiler.context import Context, attrs
from export.compiler.values import PendingPad, Tokens
from export.passes.base import Pass

SPATIAL_CONSUMERS = ("Conv", "MaxPool", "AveragePool")


class PadPass(Pass):
    ops = ("Pad",)

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        pads = _pads(ctx, node)
        if not any(pads[i] or pads[i + 4] for i in (2, 3)) and ctx.is_map(node.output[0]):
            ctx.classes.union(node.input[0], node.output[0])  # channel-only padding keeps positions

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        x = ctx.tokens(node, 0, allow_pad=True)
        a = attrs(node)
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "constant":
            raise ctx.refuse(node, f"Pad mode {mode!r}; only constant padding is supported")
        pads = _pads(ctx, node)
        if any(p < 0 for p in pads):
            raise ctx.refuse(node, f"negative pads {pads} (cropping) are not supported")
        if pads[0] or pads[4]:
            raise ctx.refuse(node, "padding of the batch axis")
        value = 0.0
        if len(node.input) > 2 and node.input[2]:
            value = float(np.asarray(ctx.constant(node, 2, "the pad value")).reshape(-1)[0])
        elif "value" in a:
            value = float(a["value"])
        b = ctx.b
        name, channels = ctx.as3d(x), x.channels
        if pads[1] or pads[5]:  # channels: pointwise, on the tokens' last axis
            if x.pad is not None:
                raise ctx.refuse(node, "channel padding after a spatial Pad")
            name = b.node("Pad", [name, b.ints([0, 0, pads[1], 0, 0, pads[5]], "pads"),
                                  b.const(np.array(value, np.float32), "pad-value")], "pad-channels", mode="constant")
            channels += pads[1] + pads[5]
        top, left, bottom, right = pads[2], pads[3], pads[6], pads[7]
        if not (top or left or bottom or right):
            ctx.set(node.output[0], Tokens(name, channels, x.height, x.width, x.layout, x.pad))
            return
        consumers = ctx.graph.consumers.get(node.output[0], [])
        if not consumers or any(c.op_type not in SPATIAL_CONSUMERS for c in consumers) or \
                node.output[0] in ctx.graph.outputs:
            raise ctx.refuse(node, "spatial padding must feed only Conv or pool layers, which absorb it")
        if x.pad is not None:
            if x.pad.value != value:
                raise ctx.refuse(node, "two spatial Pads with different values in a row")
            top, left = top + x.pad.top, left + x.pad.left
            bottom, right = bottom + x.pad.bottom, right + x.pad.right
        pending = PendingPad(top, left, bottom, right, value)
        ctx.set(node.output[0], Tokens(name, channels, x.height, x.width, x.layout, pending))


def _pads(ctx: Context, node: onnx.NodeProto) -> list[int]:
    a = attrs(node)
    if "pads" in a:
        pads = list(a["pads"])
    else:
        pads = [int(v) for v in ctx.constant(node, 1, "the pads")]
    if len(node.input) > 3 and node.input[3]:  # opset 18 axes
        axes = [int(v) % 4 for v in ctx.constant(node, 3, "the axes")]
        full = [0] * 8
        for i, axis in enumerate(axes):
            full[axis], full[axis + 4] = pads[i], pads[i + len(axes)]
        pads = full
    if len(pads) != 8:
        raise ctx.refuse(node, f"pads {pads} for a rank-4 map")
    return pads
