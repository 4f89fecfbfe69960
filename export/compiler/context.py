"""The state of one ``fresh`` rewrite, shared by the passes.

A pass reads plain tensors through :meth:`Context.value` (their keyed form),
emits nodes through ``ctx.b`` (a :class:`~export.compiler.builder.Builder`) and
records the keyed form of its outputs with :meth:`Context.set`. It declines a
node it cannot make exact with :meth:`Context.refuse`, which names the node,
the op and the reason.

Before emitting, the passes' ``constrain`` record, besides the layout classes, which tensors are
anchor lists (:attr:`Context.lists`: the axis that runs over positions, and the maps whose layouts
its segments follow) and which are Transposes of maps (:attr:`Context.sources`).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from export.compiler.builder import Builder
from export.compiler.classes import UnionFind
from export.compiler.values import Same, Tokens, Value
from export.errors import UnsupportedModel
from export.layout import Layout, layer_layout, natural
from export.prepare.graph import PlainGraph
from firmware_sim.keys import MasterKey


def attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class Context:
    def __init__(self, graph: PlainGraph, key: MasterKey, builder: Builder, salt: str) -> None:
        self.graph = graph
        self.key = key
        self.b = builder
        self.salt = salt
        self.values: dict[str, Value] = {}
        self.classes = UnionFind()
        self.layouts: dict[str, Layout] = {}
        self.sensor: Layout | None = None
        self._padded: dict[tuple, tuple[str, dict[int, int]]] = {}
        self.sensor_tables: list[str] = []
        self.epoch_recipes: dict[str, np.ndarray] = {}  # sensor-dependent gather tables, epoch-free (see gather)
        self._views: dict[tuple[str, str], str] = {}
        # constrain-time records: anchor lists (tensor -> ListAxis, export/passes/anchors.py) and the map that a
        # Transpose of a map reads (tensor -> (map, perm))
        self.lists: dict[str, object] = {}
        self.sources: dict[str, tuple[str, tuple]] = {}

    # -- errors ---------------------------------------------------------------

    def refuse(self, node: onnx.NodeProto, reason: str) -> UnsupportedModel:
        return UnsupportedModel(self.graph.node_name(node), node.op_type, reason)

    # -- plain shapes -----------------------------------------------------------

    def is_map(self, name: str) -> bool:
        """A feature map larger than 1 x 1 computed from the input (not a constant, not an anchor list)."""
        if not name or name in self.graph.constants or name in self.lists:
            return False
        shape = self.graph.shapes.get(name)
        return shape is not None and len(shape) == 4 and shape[2] * shape[3] > 1

    def hw(self, name: str) -> tuple[int, int]:
        shape = self.graph.shape(name)
        return shape[2], shape[3]

    # -- layouts --------------------------------------------------------------

    def assign_layouts(self) -> None:
        """One layout per class: the sensor's for the input's class, a fresh key-derived one otherwise."""
        input_root = self.classes.find(self.graph.input_name)
        for index, root in enumerate(self.classes.roots()):
            height, width = self.hw(root)
            if root == input_root:
                self.layouts[root] = self.sensor
            else:
                self.layouts[root] = layer_layout(self.key, f"{self.salt}.{index}", height, width)

    def layout_of(self, name: str) -> Layout:
        if name in self.classes:
            return self.layouts[self.classes.find(name)]
        height, width = self.hw(name)
        if height * width == 1:
            return natural(1, 1)
        raise AssertionError(f"tensor {name!r} has no layout class")  # a pass forgot to constrain it

    def table(self, array: np.ndarray, hint: str, *layouts: Layout) -> str:
        """A constant laid out by ``layouts``; remembered when one is the sensor's (a key epoch changes it)."""
        name = self.b.const(np.ascontiguousarray(array), hint)
        if any(layout is self.sensor for layout in layouts):
            self.sensor_tables.append(name)
        return name

    def gather(self, source: str, index: np.ndarray, in_layout: Layout, out_layout: Layout, hint: str = "gather") -> str:
        """Gather positions (axis 1 of tokens) through an index table built from two layouts."""
        index = np.asarray(index)
        dtype = np.int32 if index.size == 0 or index.max() < 2**31 else np.int64  # int32 halves the table's size
        table = self.table(index.astype(dtype), f"{hint}-index", in_layout, out_layout)
        if in_layout is self.sensor and out_layout is not self.sensor:
            # entries below H*W are physical input positions inv0[a]; perm0 turns them back into the logical
            # positions a, from which any epoch's table is inv_E[a] (pad rows, >= H*W, stay as they are)
            size = in_layout.size
            recipe = np.where(index < size, in_layout.perm[np.clip(index, 0, size - 1)], index)
            self.epoch_recipes[table] = recipe.astype(dtype)
        return self.b.node("Gather", [source, table], hint, axis=1)

    # -- values ---------------------------------------------------------------

    def value(self, name: str) -> Value:
        if name in self.values:
            return self.values[name]
        if name in self.graph.constants:
            return Same(name)
        raise AssertionError(f"tensor {name!r} used before it was produced")

    def set(self, name: str, value: Value) -> None:
        self.values[name] = value

    def tokens(self, node: onnx.NodeProto, index: int = 0, allow_pad: bool = False) -> Tokens:
        value = self.value(node.input[index])
        if not isinstance(value, Tokens):
            raise self.refuse(node, f"input {index} is a {type(value).__name__}, expected a feature map")
        if value.pad is not None and not allow_pad:
            raise self.refuse(node, "reads the output of a spatial Pad; a Pad must feed a Conv or a pool")
        return value

    def as3d(self, tokens: Tokens) -> str:
        """The tokens as (N, H*W, C)."""
        if not tokens.flat:
            return tokens.name
        key = ("3d", tokens.name)
        if key not in self._views:
            self._views[key] = self.b.reshape(tokens.name, [-1, tokens.size, tokens.channels])  # (N*HW, C) -> (N, HW, C)
        return self._views[key]

    def as2d(self, tokens: Tokens) -> str:
        """The tokens as (N*H*W, C)."""
        if tokens.flat:
            return tokens.name
        key = ("2d", tokens.name)
        if key not in self._views:
            self._views[key] = self.b.reshape(tokens.name, [-1, tokens.channels])  # (N, HW, C) -> (N*HW, C)
        return self._views[key]

    def constant(self, node: onnx.NodeProto, index: int, what: str) -> np.ndarray:
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            raise self.refuse(node, f"{what} is missing")
        array = self.graph.constants.get(name)
        if array is None:
            raise self.refuse(node, f"{what} ({name!r}) is computed at run time; keyify needs it constant")
        return array

    def padded(self, tokens: Tokens, fills: tuple[tuple[int, float], ...]) -> tuple[str, dict[int, int]]:
        """The tokens with one extra row per distinct fill value; returns (name, {code: row})."""
        rows: dict[int, int] = {}
        distinct: list[float] = []
        for code, value in fills:
            if value not in distinct:
                distinct.append(value)
            rows[code] = tokens.size + distinct.index(value)
        cache_key = (tokens.name, tuple(distinct))
        if cache_key not in self._padded:
            name = self.as3d(tokens)
            for value in distinct:
                name = self.b.pad_rows(name, 1, value)
            self._padded[cache_key] = (name, rows)
        return self._padded[cache_key][0], rows

    @staticmethod
    def is_full_map_constant(array: np.ndarray) -> bool:
        """A constant that varies over positions (not only over channels) when broadcast against a map."""
        array = np.asarray(array)
        full = array.reshape((1,) * max(0, 4 - array.ndim) + array.shape)
        return array.ndim >= 2 and full.shape[-2:] != (1, 1)

    def keyed_constant(self, node: onnx.NodeProto, array: np.ndarray, like: Tokens) -> str:
        """A plain constant broadcast against an (N, C, H, W) map, as one against (N, H*W, C) tokens."""
        array = np.asarray(array)
        if array.ndim > 4:
            raise self.refuse(node, f"constant of rank {array.ndim} cannot broadcast against a feature map")
        full = array.reshape((1,) * (4 - array.ndim) + array.shape)  # right-aligned to (N, C, H, W)
        n, c, h, w = full.shape
        if n != 1:
            raise self.refuse(node, f"constant {array.shape} varies over the batch")
        if (h, w) == (1, 1):
            return self.b.const(full.reshape(c), "channel-const")  # broadcasts on the channel axis
        if h not in (1, like.height) or w not in (1, like.width):
            raise self.refuse(node, f"constant {array.shape} does not match the map's {like.height}x{like.width}")
        full = np.broadcast_to(full, (1, c, like.height, like.width))  # a row or a column: repeated over the map
        h, w = like.height, like.width
        tokens = full.reshape(c, h * w).T  # (C, HW) -> (HW, C), logical order
        return self.table(tokens[like.layout.perm], "position-const", like.layout)
