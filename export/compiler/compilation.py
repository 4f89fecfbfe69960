"""One compile's shared state: the prepared graph, the key and options, the keyed graph being built,
the sensor layout and the constants that depend on it.

Every step of a compile (``inputs``, a policy, ``outputs``, ``split``, ``assemble``) reads and
writes through one :class:`Compilation`. The keyed graph's own tensors are named by its
:class:`~export.compiler.builder.Builder`, which never reuses a plain model's names (nodes copied
from the plain model keep theirs), nor the public names of the keyed model's input (``measurement``)
and of a split's features (``features``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx

from export.compiler.builder import Builder
from export.layout import sensor_layout
from export.prepare.graph import PlainGraph
from firmware_sim.keys import MasterKey

if TYPE_CHECKING:
    from export.compiler.options import KeyifyOptions

MEASUREMENT = "measurement"  # the keyed model's input: (N, H, W, C) codes in the sensor layout
FEATURES = "features"  # a split's features: the feature model's output, the task model's input


class Compilation:
    def __init__(self, graph: PlainGraph, key: MasterKey, options: KeyifyOptions,
                 sources: dict[str, str] | None = None) -> None:
        self.graph = graph
        self.key = key
        self.options = options  # resolved: mean, std, model order and framing filled in (compiler/preprocessing.py)
        self.sources = dict(sources or {})  # where each preprocessing value came from, for the manifest
        self.salt = graph.digest[:12]  # labels the layer layouts: one model's layouts, not another's
        self.builder = Builder(graph.opset)
        for node in graph.nodes:  # plain names stay reserved: copied nodes keep them
            for name in list(node.input) + list(node.output):
                self.builder.reserve(name)
        for name in graph.constants:
            self.builder.reserve(name)
        self.builder.reserve(MEASUREMENT)
        self.builder.reserve(FEATURES)
        self.sensor = sensor_layout(key, graph.height, graph.width, options.epoch)
        self.sensor_tables: list[str] = []  # constants laid out by the sensor layout: a key epoch changes them
        self.epoch_recipes: dict[str, np.ndarray] = {}  # sensor table -> its epoch-free recipe (see Context.gather)
        self.table_groups: dict[str, int] = {}  # sensor table -> codes per position its indices count (absent: 1)

    def copy(self, node: onnx.NodeProto, inputs: list[str]) -> None:
        """Append the plain ``node`` to the keyed graph as it is, reading ``inputs``."""
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        del copy.input[:]
        copy.input.extend(inputs)
        self.builder.nodes.append(copy)
