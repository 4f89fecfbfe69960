"""Load a plain ONNX model and prepare it for the keyed rewrite.

Preparation, in order:

1. Check the model has one image input, NCHW float, C in {1, 3} (a channels-last
   (N, H, W, C) input, as TensorFlow's exporters write it, is first rewritten
   to an exact NCHW one: ``export/prepare/channels_last.py``); fix its
   spatial size (from the model, or ``--size`` when the model's is dynamic)
   and give a dynamic batch dimension a symbolic name, so every shape below is
   known except the batch. A fixed batch (the model was exported with one) is
   kept: the keyed model takes that batch, and the manifest says so.
2. Bring old models to opset 13 (``onnx.version_converter``), the oldest the
   rewrite emits for.
3. Fold what exporters compute at run time (pads, shapes, BatchNormalization
   into Conv, Identity and Dropout) with onnxruntime's own basic optimiser,
   which writes standard ONNX.
4. Infer every tensor's shape: onnxruntime runs the model at batch 1 and 2
   and the dimensions that change are the batch, or, for a fixed batch, at that
   batch only (``export/prepare/shapes.py``: the runtime's shapes are the truth;
   onnx's static inference misses, e.g., ceil_mode windows that would start in
   the padding), and so are the element types. Shape arithmetic that gives the
   same value in every run (a dynamic export's anchor grids) becomes constants.
5. Rewrite nearest up-sampling written as data movement (Keras 3's
   UpSampling2D: Unsqueeze, Tile, Transpose, Reshape) to one Resize, when a
   probe shows it is exactly that (``export/prepare/repeat.py``).

The result, :class:`PlainGraph`, holds the nodes in topological order, the
constants, shapes with ``None`` for the batch dimension, producers and consumers.
The compiler changes it in one way only: folding the input normalisation into the
first Conv (``export/compiler/inputs.py``) adds the folded weight to ``constants``
and swaps that node for its folded twin with :meth:`PlainGraph.replace_node`,
which keeps producers and consumers true.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from export.errors import ModelError, UnsupportedModel
from export.prepare.channels_last import to_channels_first
from export.prepare.repeat import rewrite_repeats
from export.prepare.shapes import (data_tensors, failing_node, fold_shape_arithmetic, one_line, run_every_tensor,
                                   shapes_of)

MIN_OPSET = 13
BATCH = "N"

Shape = tuple  # of int, or None for the batch dimension


@dataclass
class PlainGraph:
    """A prepared plain model, ready for the keyed rewrite."""

    model: onnx.ModelProto
    opset: int
    input_name: str
    channels: int
    height: int
    width: int
    nodes: list[onnx.NodeProto]
    constants: dict[str, np.ndarray]
    shapes: dict[str, Shape]
    dtypes: dict[str, int]
    outputs: list[str]
    digest: str
    batch: int | None = None  # the fixed batch the model was exported with; None: dynamic
    input_layout: str = "nchw"  # the plain model's own input: "nchw", or "nhwc" (rewritten to NCHW here)
    producers: dict[str, onnx.NodeProto] = field(default_factory=dict)
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for node in self.nodes:
            for name in node.output:
                if name:
                    self.producers[name] = node
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(node)

    def shape(self, name: str) -> Shape:
        try:
            return self.shapes[name]
        except KeyError:
            raise UnsupportedModel(name, "?", "its shape could not be inferred") from None

    def node_name(self, node: onnx.NodeProto) -> str:
        return node.name or (node.output[0] if node.output else node.op_type)

    def replace_node(self, old: onnx.NodeProto, new: onnx.NodeProto) -> None:
        """Put ``new`` in ``old``'s place (same outputs); producers and consumers follow."""
        self.nodes[self.nodes.index(old)] = new
        for name in old.input:
            if name:
                readers = self.consumers[name]
                readers[:] = [reader for reader in readers if reader is not old]
                if not readers:
                    del self.consumers[name]
        for name in new.input:
            if name:
                readers = self.consumers.setdefault(name, [])
                if not any(reader is new for reader in readers):
                    readers.append(new)
        for name in new.output:
            if name:
                self.producers[name] = new


def load_model(path: str | Path) -> onnx.ModelProto:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model '{path}' does not exist")
    try:
        return onnx.load(str(path))
    except Exception as error:  # onnx raises DecodeError, ValueError, ... for a bad file
        raise ModelError(f"model '{path}' is not a readable ONNX file ({type(error).__name__})") from None


def _graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {init.name for init in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in initializers]


def _dims(value: onnx.ValueInfoProto) -> list[int | None]:
    dims = []
    for dim in value.type.tensor_type.shape.dim:
        dims.append(dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else None)
    return dims


def _fix_input(model: onnx.ModelProto, size: tuple[int, int] | None) -> tuple[str, int, int, int, int | None]:
    inputs = _graph_inputs(model)
    if len(inputs) != 1:
        names = ", ".join(v.name for v in inputs)
        raise UnsupportedModel("(graph)", "input", f"the model has {len(inputs)} inputs ({names}); keyify needs one image input")
    value = inputs[0]
    elem = value.type.tensor_type.elem_type
    if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
        raise UnsupportedModel(value.name, "input", f"input dtype {onnx.TensorProto.DataType.Name(elem)}; expected float")
    dims = _dims(value)
    if len(dims) != 4:
        raise UnsupportedModel(value.name, "input", f"input has rank {len(dims)}; expected NCHW (rank 4)")
    batch, channels, height, width = dims
    if channels not in (1, 3):
        raise UnsupportedModel(
            value.name, "input",
            f"input has {channels} channels in dim 1; expected NCHW (or NHWC) with 1 or 3 channels"
        )
    if size is not None:
        want_h, want_w = size
        if (height is not None and height != want_h) or (width is not None and width != want_w):
            raise UnsupportedModel(
                value.name, "input", f"--size {want_h}x{want_w} conflicts with the model's fixed {height}x{width}"
            )
        height, width = want_h, want_w
    if height is None or width is None:
        hint = _metadata(model).get("imgsz")
        hint = f" (its metadata says imgsz {hint})" if hint else ""
        raise UnsupportedModel(value.name, "input", f"the model's spatial size is dynamic; pass --size HxW{hint}")
    shape = value.type.tensor_type.shape
    if batch is None:
        shape.dim[0].Clear()
        shape.dim[0].dim_param = BATCH
    for index, dim in ((2, height), (3, width)):
        shape.dim[index].Clear()
        shape.dim[index].dim_value = dim
    for output in model.graph.output:  # stale or partial output shapes would fight shape inference
        output.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]
    return value.name, channels, height, width, batch


def _metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {prop.key: prop.value for prop in model.metadata_props}


def _opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    raise UnsupportedModel("(graph)", "opset", "the model imports no default-domain opset")


def _fold(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxruntime's basic (standard-ONNX) optimisations: constant folding, BN into Conv, no-op removal."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="keycam-fold-") as folder:
        target = os.path.join(folder, "folded.onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = target
        options.log_severity_level = 3
        try:
            ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise UnsupportedModel(failing_node(error), "load",
                                   f"onnxruntime cannot load the plain model: {one_line(error)}") from None
        folded = onnx.load(target)
    # keep the metadata the optimiser drops
    del folded.metadata_props[:]
    folded.metadata_props.extend(model.metadata_props)
    return folded


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    found = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            found[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return found


def prepare(model: onnx.ModelProto | str | Path, size: tuple[int, int] | None = None) -> PlainGraph:
    """Load (if a path), fix the input, fold and infer shapes. See the module docstring."""
    if not isinstance(model, onnx.ModelProto):
        model = load_model(model)
    digest = hashlib.sha256(model.SerializeToString()).hexdigest()
    work = onnx.ModelProto()
    work.CopyFrom(model)
    input_layout = "nhwc" if to_channels_first(work) is not None else "nchw"
    input_name, channels, height, width, batch = _fix_input(work, size)
    if _opset(work) < MIN_OPSET:
        try:
            work = onnx.version_converter.convert_version(work, MIN_OPSET)
        except Exception as error:
            raise UnsupportedModel("(graph)", "opset",
                                   f"opset {_opset(work)} could not be converted to 13: {one_line(error)}") from None
    if work.graph.input[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise UnsupportedModel(input_name, "input", "only float32 models are supported")
    work = _fold(work)
    # the runtime's shapes are the truth (onnx's inference misses e.g. ceil_mode windows that start in the padding)
    batches = (1, 2) if batch is None else (batch,)  # never a batch a fixed-batch model cannot run
    runs = run_every_tensor(work, input_name, (channels, height, width), batches)
    data = data_tensors(work, input_name)
    fold_shape_arithmetic(work, runs, data)  # anchor grids computed from Shape at run time -> constants
    shapes, dtypes = shapes_of(work, runs, data, batch)
    del runs
    shapes[input_name] = (None, channels, height, width)
    dtypes[input_name] = onnx.TensorProto.FLOAT
    # nearest up-sampling written as Unsqueeze/Tile/Reshape (Keras 3) -> Resize
    rewrite_repeats(work, shapes, (1, 3) if batch is None else (batch,))
    return PlainGraph(
        model=work,
        opset=_opset(work),
        input_name=input_name,
        channels=channels,
        height=height,
        width=width,
        nodes=list(work.graph.node),
        constants=_constants(work),
        shapes=shapes,
        dtypes=dtypes,
        outputs=[o.name for o in work.graph.output],
        digest=digest,
        batch=batch,
        input_layout=input_layout,
    )
