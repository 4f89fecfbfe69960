"""One keyed model (full, feature or task) quantised: its manifest, its sensor tables, its metadata.

The sensor tables (``manifest.sensor_tables``: the gathers' index tables that depend on the sensor
layout, rebuilt per key epoch by ``edge.runtime.KeyedModel`` from the ``.epochs.npz`` recipes) must
come out of quantisation as they went in: the same initializer names, dtypes and values, so the
device overrides them as it does for a float model (a ``boundary`` model compiled with the old row gather
has it first rewritten as a GatherElements along positions, its table reshaped, ``front.py``). The nodes that
read them are left in float (``nodes_to_exclude``: under ``boundary`` they move the measurement's codes anyway; under
``fresh`` the first layer's gather then reads float tokens), and every table is checked afterwards.
So are the nodes that read tensors holding -inf (``fresh`` max-pooling's pad rows: no uint8 grid
holds them).
The quantised model carries the manifest with ``quantization`` set, in its metadata as the compiler
writes it (``keycam.manifest``, ``keycam.fingerprint``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from export.errors import ModelError
from export.quantize import ort
from export.quantize.front import fast_gather
from export.quantize.unfold import unfold
from firmware_sim.manifest import METADATA_KEY, Manifest, QuantizationSpec


def read_manifest(model: onnx.ModelProto, source: str) -> Manifest:
    metadata = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in metadata:
        raise ModelError(f"model '{source}' is not a keyed model (no keycam manifest); compile it with keycam keyify")
    manifest = Manifest.from_json(metadata[METADATA_KEY], source=f"the manifest of '{source}'")
    if manifest.quantization is not None:
        raise ModelError(f"model '{source}' is quantised already ({manifest.quantization.weights} weights); "
                         f"quantise the float keyed model it was made from")
    return manifest


def _tables(model: onnx.ModelProto, names: Sequence[str]) -> dict[str, np.ndarray]:
    inits = {i.name: i for i in model.graph.initializer}
    return {name: numpy_helper.to_array(inits[name]) for name in names if name in inits}


MOVES = {"Pad", "Gather", "Reshape", "Transpose", "Concat", "Slice", "Squeeze", "Unsqueeze", "Flatten", "Identity"}


def _unbounded(model: onnx.ModelProto) -> set[str]:
    """Tensors that hold -inf or inf: ``fresh`` max-pooling pads its tokens with -inf rows, which data movement
    carries to the ReduceMax (a per-tensor uint8 grid cannot hold them: MinMax would make its scale inf)."""
    found = {i.name for i in model.graph.initializer
             if i.data_type == onnx.TensorProto.FLOAT and not np.all(np.isfinite(numpy_helper.to_array(i)))}
    for node in model.graph.node:  # in topological order, as the compiler writes it
        if set(node.input) & found and (node.op_type in MOVES or node.output[0] in found):
            found.update(node.output)
    return found


def _affine(model: onnx.ModelProto) -> set[str]:
    """``fresh`` element-wise nodes with a constant operand (a BatchNormalization it could not fold becomes a Mul
    and an Add): left in float, so the tensors quantised are the plain model's (its QDQ BatchNormalization
    quantises the input and the output, not the product in between)."""
    constants = {i.name for i in model.graph.initializer}
    return {n.name for n in model.graph.node if n.op_type in ("Mul", "Add", "Sub", "Div") and set(n.input) & constants}


def _excluded(model: onnx.ModelProto, tables: Sequence[str], policy: str) -> list[str]:
    """Names of the nodes that read a sensor table or an unbounded tensor, and under ``fresh`` its affine nodes
    (nodes named first where the graph left them unnamed)."""
    ort.name_nodes(model)
    unbounded = _unbounded(model)
    affine = _affine(model) if policy == "fresh" else set()
    return [n.name for n in model.graph.node if set(n.input) & (set(tables) | unbounded) or n.name in affine]


def quantize_keyed(model: onnx.ModelProto, manifest: Manifest, data: Sequence[np.ndarray], *,
                   calibration: str, source: str, plain_weight: np.ndarray | None = None
                   ) -> tuple[onnx.ModelProto, Manifest, str]:
    """``model`` (keyed, float) quantised on ``data`` (batches of its input). Returns the int8 model, its
    manifest, and a note: how its first layer was quantised (``unfold.py``) and its gather written (``front.py``)."""
    work = onnx.ModelProto()
    work.CopyFrom(model)
    if plain_weight is not None and manifest.role != "task":
        declined = unfold(work, manifest, plain_weight)
        note = "first layer: the plain model's own" if declined is None else f"first layer as compiled: {declined}"
    else:
        note = "first layer as compiled: " + ("a task model" if manifest.role == "task" else "no plain model given")
    if manifest.sensor_tables and fast_gather(work, manifest) is None:
        note += "; natural order by one GatherElements"
    before = _tables(work, manifest.sensor_tables)
    missing = [t for t in manifest.sensor_tables if t not in before]
    if missing:
        raise ModelError(f"model '{source}' lacks its sensor table {missing[0]!r}; compile it again with keycam keyify")
    excluded = _excluded(work, manifest.sensor_tables, manifest.policy)
    quantised = ort.quantize(work, data, exclude=excluded, what=f"model '{source}'")
    after = _tables(quantised, manifest.sensor_tables)
    for name, table in before.items():  # the same values under the same name (as fast_gather shaped them)
        kept = after.get(name)
        if kept is None or kept.dtype != table.dtype or not np.array_equal(kept, table):
            raise ModelError(f"quantising '{source}' changed its sensor table {name!r}, so key epochs could not "
                             f"rebuild it; report this with the model ({ort.tool()})")
    spec = QuantizationSpec(format=ort.FORMAT, weights=ort.WEIGHTS, activations=ort.ACTIVATIONS,
                            calibration=calibration, method=ort.METHOD, tool=ort.tool())
    quantised_manifest = manifest.model_copy(update={"quantization": spec})
    _metadata(quantised, model, quantised_manifest)
    return quantised, quantised_manifest, note


def _metadata(target: onnx.ModelProto, source: onnx.ModelProto, manifest: Manifest) -> None:
    """The source model's keycam metadata on the quantised one, the manifest updated."""
    del target.metadata_props[:]
    for prop in source.metadata_props:
        value = manifest.to_json() if prop.key == METADATA_KEY else prop.value
        entry = target.metadata_props.add()
        entry.key, entry.value = prop.key, value
    target.producer_name = source.producer_name or target.producer_name
    target.doc_string = source.doc_string


def check_measurements(frames: np.ndarray, manifest: Manifest, source: str) -> None:
    """Refuse calibration measurements that are not this model's input (shape and dtype), in one line."""
    want = manifest.split.features if manifest.role == "task" and manifest.split else None
    shape = want.shape if want is not None else manifest.input.shape
    dtype = np.dtype("float32") if want is not None else np.dtype(manifest.input.dtype)
    text = "(N, " + ", ".join(str(d) for d in shape[1:]) + f") {dtype}"
    if not isinstance(frames, np.ndarray) or frames.ndim != len(shape) or frames.dtype != dtype \
            or any(e is not None and e != a for e, a in zip(shape[1:], frames.shape[1:])):
        got = f"{tuple(frames.shape)} {frames.dtype}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise ModelError(f"calibration data for '{source}' is {got}; the model reads {text}: give its measurements")
    if len(frames) == 0:
        raise ModelError(f"calibration data for '{source}' holds no frames; give at least one")
