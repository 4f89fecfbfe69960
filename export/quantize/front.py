"""Before quantising a ``boundary`` model: its natural-order gather as one fast gather along positions.

The compiler now writes non-Bayer ``boundary`` inputs as one GatherElements itself, over the cast codes with a
table of code indices (``export/compiler/inputs.py``, ``_natural_planes``); this rewrite is for models compiled
with the row gather before that (and finds nothing to do in newer ones).

``boundary`` puts the measurement in natural order with one row gather and then a transpose to
channels-first (``export/compiler/inputs.py``, ``natural_input``)::

    natural = Gather(rows, inv, axis=1)       rows (N, HW, C) codes, inv (HW,): natural[n, a, c] = rows[n, inv[a], c]
    planes  = Transpose(natural, [0, 2, 1])   (N, C, HW):                    planes[n, c, a] = rows[n, inv[a], c]

onnxruntime's Gather copies one C-code row per index (about 8 ns a row on this machine: 0.4 ms at 224x224,
a tenth of an int8 MobileNetV2), while GatherElements along the last axis is a tight loop over elements.
So the same data movement is written, transposing first::

    codes  = Transpose(rows, [0, 2, 1])                   (N, C, HW):  codes[n, c, q] = rows[n, q, c]
    planes = GatherElements(codes, Expand(inv', shape(codes)), axis=2)   planes[n, c, a] = codes[n, c, inv[a]]

with ``inv'`` the same table (values, dtype, name) reshaped to (1, 1, HW), or stored at (B, C, HW) for a model
of fixed batch B (an Expand of constants would be folded away, and the table's name with it); its epoch
recipe is shaped alike (``export/quantize/__init__.py``). The rows land where they landed, bit for bit, in
about a third of the time (0.16 ms at 224x224, the transpose and the expansion included). Integer data
movement, before any quantisation: the plain network after it is untouched. Declines, with a reason, when
the gather is not followed by that transpose alone (a Bayer spec's mini-ISP runs between them) or is not
``boundary``'s.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from firmware_sim.manifest import Manifest


def _attribute(node: onnx.NodeProto, name: str, default=None):
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def fast_gather(model: onnx.ModelProto, manifest: Manifest) -> str | None:
    """Rewrite ``model`` in place (see the module docstring); returns None when done, else why not."""
    if manifest.policy != "boundary" or len(manifest.sensor_tables) != 1:
        return f"the {manifest.policy} policy's gathers are the layers' own"
    g = model.graph
    (table,) = manifest.sensor_tables
    readers = [n for n in g.node if table in n.input]
    consumers = {name: [n for n in g.node if name in n.input] for node in readers for name in node.output}
    if len(readers) == 1 and readers[0].op_type in ("GatherElements", "Expand"):
        return None  # compiled so already (export/compiler/inputs.py writes it this way for non-Bayer specs)
    if len(readers) != 1 or readers[0].op_type != "Gather" or _attribute(readers[0], "axis", 0) != 1:
        return "the sensor table is not read by one row gather"
    gather = readers[0]
    after = consumers[gather.output[0]]
    if len(after) != 1 or after[0].op_type != "Transpose" or list(_attribute(after[0], "perm", [])) != [0, 2, 1] \
            or gather.output[0] in {o.name for o in g.output}:
        return "the row gather is not followed by the transpose to channels-first alone (a mini-ISP between them)"
    transpose = after[0]
    init = next(i for i in g.initializer if i.name == table)
    batch, channels = manifest.input.shape[0], manifest.input.shape[3]
    init.CopyFrom(numpy_helper.from_array(index_table(numpy_helper.to_array(init), batch, channels), table))
    rows, planes = gather.input[0], transpose.output[0]
    codes, shape, index = (f"keycam/fast-gather/{name}" for name in ("codes", "shape", "index"))
    new = [helper.make_node("Transpose", [rows], [codes], name=codes + "/Transpose", perm=[0, 2, 1])]
    if batch is None:  # the table is expanded to the batch at run time
        new += [helper.make_node("Shape", [codes], [shape], name=shape + "/Shape"),
                helper.make_node("Expand", [table, shape], [index], name=index + "/Expand")]
    else:  # a fixed batch: the table is stored at (B, C, HW) (an Expand of constants would be folded away)
        index = table
    new.append(helper.make_node("GatherElements", [codes, index], [planes], name="keycam/fast-gather/GatherElements",
                                axis=2))
    at = list(g.node).index(gather)
    g.node.remove(gather)
    g.node.remove(transpose)
    for k, node in enumerate(new):
        g.node.insert(at + k, node)
    return None


def index_table(table: np.ndarray, batch: int | None, channels: int) -> np.ndarray:
    """A row table (or recipe) (HW,) as GatherElements reads it: (1, 1, HW), or (B, C, HW) for a fixed batch B."""
    flat = np.asarray(table).reshape(1, 1, -1)
    return flat if batch is None else np.ascontiguousarray(np.broadcast_to(flat, (batch, channels, flat.shape[2])))


def table_shapes(model: onnx.ModelProto, names: list[str]) -> dict[str, tuple[int, ...]]:
    """The shapes the model's sensor tables have (the epoch recipes must have the same)."""
    return {i.name: tuple(i.dims) for i in model.graph.initializer if i.name in names}


def reshaped_recipes(recipes: dict[str, np.ndarray], names: list[str], shapes: dict[str, tuple]) -> dict:
    """``tN`` recipes (``export/package/save.py``) in their tables' shapes in the rewritten model (a recipe is
    rebuilt element by element, ``edge.runtime.KeyedModel._rotate``, so the same values in the same places)."""
    out = {}
    for i, name in enumerate(names):
        recipe, shape = recipes[f"t{i}"], shapes[name]
        out[f"t{i}"] = recipe.reshape(shape) if recipe.size == int(np.prod(shape)) else \
            index_table(recipe, shape[0], shape[1])
    return out
