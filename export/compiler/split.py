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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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


def cut(job: Compilation, tensor: str, values: dict[str, Value]) -> Cut:
    """Emit ``features`` from ``tensor``'s keyed form; returns the split's manifest entry and the task's renames."""
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
