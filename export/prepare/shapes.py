"""Every tensor's shape, read off onnxruntime's own runs, and the batch, dynamic or fixed.

The runtime's shapes are the truth (onnx's static inference misses, e.g., ceil_mode windows that
would start in the padding). The batch is found two ways:

- **dynamic batch**: the model runs at batch 1 and at batch 2; the dimensions that change are the
  batch (``None`` in the shapes).
- **fixed batch** ``B`` (the model was exported with ``B`` in its input shape, as ultralytics and
  TFLite write it): the model may hard-code it (ultralytics' ``/model.22/dfl/Reshape`` to
  ``{1, 4, 16, 2100}``), so it runs at ``B`` only, never at a batch it cannot run. The batch
  dimension of a tensor computed from the image data (not only from its shape) is then its
  first, when that is ``B``: a CNN keeps the batch first.

Shape arithmetic is folded too: a tensor computed from ``Shape`` outputs and constants only (no
image data reaches it but through ``Shape``), with the same value in every run, is a constant
(anchor grids and strides that a dynamic export computes at run time, ``Range``, ``Expand``,
``ConstantOfShape``), and becomes an initializer; the nodes only it needed go. A value that
changes with the batch (a reshape target built from ``Shape(x)[0]``) stays computed.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from export.errors import UnsupportedModel

FOLD_LIMIT = 1 << 22  # elements: a folded shape computation larger than this stays computed

Shape = tuple  # of int, or None for the batch dimension


def run_every_tensor(model: onnx.ModelProto, input_name: str, chw: tuple[int, int, int],
                     batches: tuple[int, ...]) -> list[dict[str, np.ndarray]]:
    """Every tensor's value at each batch in ``batches`` (zero input), or a one-line refusal."""
    from export.prepare.probe import every_tensor_session

    try:
        session, names = every_tensor_session(model)
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise UnsupportedModel("(graph)", "load", f"onnxruntime cannot load the plain model: {one_line(error)}") from None
    runs = []
    for batch in batches:
        feed = np.zeros((batch, *chw), dtype=np.float32)
        try:
            runs.append(dict(zip(names, session.run(names, {input_name: feed}))))
        except Exception as error:  # noqa: BLE001
            raise UnsupportedModel(failing_node(error), "run", f"onnxruntime cannot run the plain model at batch "
                                                                 f"{batch}: {one_line(error)}") from None
    return runs


def data_tensors(model: onnx.ModelProto, input_name: str) -> set[str]:
    """Tensors computed from the image data: the input's descendants, except through ``Shape`` and ``Size``."""
    data = {input_name}
    for node in model.graph.node:  # topological order
        if node.op_type in ("Shape", "Size"):
            continue
        if any(name in data for name in node.input if name):
            data.update(name for name in node.output if name)
    return data


def shapes_of(model: onnx.ModelProto, runs: list[dict[str, np.ndarray]], data: set[str],
              batch: int | None) -> tuple[dict[str, Shape], dict[str, int]]:
    """Shapes (``None`` for the batch) and element types of every tensor. See the module docstring."""
    shapes: dict[str, Shape] = {init.name: tuple(init.dims) for init in model.graph.initializer}
    dtypes: dict[str, int] = {init.name: init.data_type for init in model.graph.initializer}
    for name in runs[0]:
        dims = [np.shape(run[name]) for run in runs]
        if any(len(d) != len(dims[0]) for d in dims):
            continue
        if batch is None:
            shape = tuple(a if all(d[i] == a for d in dims) else None for i, a in enumerate(dims[0]))
        else:
            shape = dims[0]
            if name in data and shape and shape[0] == batch:
                shape = (None, *shape[1:])
        shapes[name] = tuple(shape)
        dtypes[name] = helper.np_dtype_to_tensor_dtype(np.asarray(runs[0][name]).dtype)
    return shapes, dtypes


def fold_shape_arithmetic(model: onnx.ModelProto, runs: list[dict[str, np.ndarray]], data: set[str]) -> int:
    """Replace shape-only tensors that are the same in every run by initializers (in place); returns how many."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    foldable: set[str] = set()
    for node in graph.node:  # a node folds whole: every output shape-only, the same in every run, not an output
        names = [name for name in node.output if name]
        if names and all(_same_in_every_run(runs, name) and name not in data and name not in outputs
                         for name in names):
            foldable.update(names)
    frontier: list[str] = []
    for node in graph.node:
        if all(name in foldable for name in node.output if name):
            continue  # folded away
        frontier += [name for name in node.input if name in foldable and name not in frontier]
    if not frontier:
        return 0
    for name in frontier:
        graph.initializer.append(numpy_helper.from_array(np.asarray(runs[0][name]), name))
    needed = set(outputs)
    live: list[onnx.NodeProto] = []
    for node in reversed(list(graph.node)):  # what the outputs still need
        if any(name in needed for name in node.output) and not any(name in foldable for name in node.output):
            live.append(node)
            needed.update(node.input)
    dropped = len(graph.node) - len(live)
    live.reverse()
    del graph.node[:]
    graph.node.extend(live)
    return dropped


def _same_in_every_run(runs: list[dict[str, np.ndarray]], name: str) -> bool:
    values = [run.get(name) for run in runs]
    if any(v is None for v in values) or np.asarray(values[0]).size > FOLD_LIMIT:
        return False
    first = np.asarray(values[0])
    return all(np.asarray(v).shape == first.shape and np.array_equal(v, first) for v in values[1:])


def one_line(error: Exception) -> str:
    """An exception's message on one line (onnxruntime's carry a status prefix and sometimes more lines)."""
    text = " ".join(str(error).split())
    for prefix in ("[ONNXRuntimeError] : ",):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text[:400]


def failing_node(error: Exception) -> str:
    """The node onnxruntime names in its message ("... running Reshape node. Name:'/model.22/dfl/Reshape' ...",
    "Node (head/Reshape) Op (Reshape) [ShapeInferenceError] ..."), or "(graph)"."""
    text = str(error)
    for marker, close in (("Name:'", "'"), ("Node (", ")")):  # at run time; when onnxruntime loads the model
        if marker in text:
            start = text.index(marker) + len(marker)
            end = text.find(close, start)
            if end > start:
                return text[start:end]
    return "(graph)"
