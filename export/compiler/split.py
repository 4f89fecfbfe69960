"""The feature/task split: a feature model on the device, a task model anywhere.

With ``split_after`` the keyed model is cut at one tensor (named directly, or as the node that
makes it). The feature model ends there and emits it as ``features``, (N, HW, C) tokens, its
positions in a key-derived layout; the task model starts from ``features``; task(feature(x))
equals the keyed model's output. The cut is one step after either policy has emitted the body:

- ``fresh``: the tensor already is tokens in a layer layout; the feature model emits them as
  they are, and the task model reads ``features`` in their place. A pooled vector or a logit
  (nothing left to hide) crosses as the plain tensor.
- ``boundary``: the tensor is the plain (N, C, H, W) map in natural order; the feature model
  scrambles it into a layout of its own (``{salt}.split``), and the task model begins by putting
  it back in natural order.

``assemble.py`` checks that the task model reads nothing else computed before the cut (a skip
connection across it), and no table that depends on the sensor layout.

A cut at or before the first spatial layer hands the task side the picture: what crosses is a per-pixel
function of the frame (the normalised picture itself, or a 1 x 1 convolution of it), and the task model
holds the table that puts it back in order. :func:`reveals_picture` finds such cuts (no operator that
mixes neighbouring positions lies between the input and the cut tensor); they are refused unless the
options say so explicitly (``split_reveals_picture``, ``keyify --split-reveals-picture``, which warns).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from export.compiler.compilation import FEATURES, Compilation
from export.compiler.outputs import layout_ref
from export.compiler.values import Same, Tokens, Value
from export.errors import UnsupportedModel
from export.layout import layer_layout
from export.prepare.graph import PlainGraph
from firmware_sim.manifest import OutputSpec, SplitSpec


@dataclass(frozen=True)
class Cut:
    spec: SplitSpec
    rename: dict[str, str] = field(default_factory=dict)  # the task model reads rename[t] wherever the body reads t


def split_target(graph: PlainGraph, name: str) -> str:
    """The tensor ``--split-after`` names: a tensor, or the node that makes it (its first output)."""
    if name in graph.shapes and (name in graph.producers or name == graph.input_name):
        return name
    for node in graph.nodes:
        if node.name == name:
            return node.output[0]
    raise UnsupportedModel(name, "split", "no node or tensor of that name in the model")


SPATIAL = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "Resize", "Upsample", "DeformConv",
           "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "Flatten", "Gemm", "MatMul", "Reshape", "SpaceToDepth",
           "DepthToSpace"}  # operators that may mix positions (a Conv only when its kernel or stride is larger than 1)


def _mixes_positions(node: onnx.NodeProto, graph: PlainGraph) -> bool:
    if node.op_type not in SPATIAL:
        return False
    if node.op_type in ("Conv", "ConvTranspose"):
        weight = graph.constants.get(node.input[1]) if len(node.input) > 1 else None
        kernel = tuple(weight.shape[2:]) if weight is not None else None
        strides = next((list(a.ints) for a in node.attribute if a.name == "strides"), [])
        return kernel is None or any(k > 1 for k in kernel) or any(s > 1 for s in strides)
    return True


def reveals_picture(graph: PlainGraph, tensor: str) -> bool:
    """True when ``tensor`` is a per-pixel function of the input: no operator that mixes positions lies on any path
    from the input to it (then the task side, which holds the features' layout, can see the picture)."""
    pending, seen = [tensor], set()
    while pending:
        name = pending.pop()
        if name in seen or name == graph.input_name:
            continue
        seen.add(name)
        node = graph.producers.get(name)
        if node is None:
            continue
        if _mixes_positions(node, graph):
            return False
        pending.extend(i for i in node.input if i)
    return True


def cut(job: Compilation, tensor: str, values: dict[str, Value]) -> Cut:
    """Emit ``features`` from ``tensor``'s keyed form; returns the split's manifest entry and the task's renames."""
    if reveals_picture(job.graph, tensor) and not job.options.split_reveals_picture:
        raise UnsupportedModel(tensor, "split", "a split at or before the first spatial layer hands the task "
                                                "server the picture (its model holds the features' layout); split "
                                                "after a layer that mixes positions, or pass "
                                                "--split-reveals-picture to accept it")
    if job.options.policy == "boundary":
        features, rename = _scramble(job, tensor)
    else:
        features, rename = _tokens(job, tensor, values.get(tensor) if tensor != job.graph.input_name else None)
    return Cut(SplitSpec(after=job.options.split_after, tensor=tensor, features=features), rename)


def _tokens(job: Compilation, tensor: str, value: Value | None) -> tuple[OutputSpec, dict[str, str]]:
    """``fresh``: the keyed tokens leave as they are."""
    b = job.builder
    if isinstance(value, Tokens) and value.pad is None and value.size > 1:
        b.node("Identity", [value.name], outputs=[FEATURES])
        features = OutputSpec(name=FEATURES, shape=[job.graph.batch, value.size, value.channels], kind="dense",
                              form="tokens", layout=layout_ref(value.layout))
    elif isinstance(value, Tokens) and value.pad is None:  # a 1x1 map: no positions to hide
        b.node("Identity", [value.name], outputs=[FEATURES])
        features = OutputSpec(name=FEATURES, shape=[job.graph.batch, 1, value.channels], kind="plain", form="tokens")
    elif isinstance(value, Same):
        b.node("Identity", [value.name], outputs=[FEATURES])
        shape = [job.graph.batch if i == 0 and d is None else d for i, d in enumerate(job.graph.shape(tensor))]
        features = OutputSpec(name=FEATURES, shape=shape, kind="plain")
    else:
        raise UnsupportedModel(tensor, "split", "split after a feature map, a pooled vector or a "
                                                "logit; this tensor cannot cross devices")
    return features, {value.name: FEATURES}


def _scramble(job: Compilation, tensor: str) -> tuple[OutputSpec, dict[str, str]]:
    """``boundary``: the natural-order map leaves in a layout of its own, and comes back in order."""
    b = job.builder
    shape = job.graph.shape(tensor)
    if len(shape) != 4 or shape[2] * shape[3] == 1:
        raise UnsupportedModel(tensor, "split", "the split tensor must be a feature map larger than 1x1")
    c, h, w = shape[1], shape[2], shape[3]
    layout = layer_layout(job.key, f"{job.salt}.split", h, w)
    moved = b.transpose(b.reshape(tensor, [-1, c, h * w]), [0, 2, 1])  # (N, C, H, W) -> (N, HW, C)
    b.node("Gather", [moved, b.const(layout.perm.astype(np.int64), "split-index")], outputs=[FEATURES], axis=1)
    back = b.gather(FEATURES, layout.inv, axis=1, hint="unsplit")  # (N, HW, C) natural order
    decoded = b.reshape(b.transpose(back, [0, 2, 1]), [-1, c, h, w])  # -> (N, C, H, W)
    features = OutputSpec(name=FEATURES, shape=[job.graph.batch, h * w, c], kind="dense", form="tokens",
                          layout=layout_ref(layout))
    return features, {tensor: decoded}
