"""Nearest up-sampling written as data movement, recognised and rewritten to one Resize.

Keras 3's ``UpSampling2D`` (``ops.repeat`` twice) reaches ONNX through tf2onnx
as Unsqueeze -> Tile -> Transpose -> Reshape (its shape computed at run time
from ``Shape``), then again for the other axis, then a Transpose back to NCHW;
hand-written PyTorch does the same with ``x[..., None].expand(...).reshape``.
The keyed compiler has no pass for a 5-d tensor, so this module rewrites such a
chain, when it is exactly a nearest up-sampling, into

    Y = Resize(X, scales = [1, 1, sh, sw], mode nearest, asymmetric, floor):  Y[n, c, i, j] = X[n, c, i // sh, j // sw]

which the compiler keys as a gather (``export/passes/resize.py``).

A chain starts at a feature map X (N, C, H, W) read by Unsqueeze, Tile, Expand
or a Reshape to rank 5 or more, and follows single data readers through
data-movement operators (Unsqueeze, Squeeze, Tile, Expand, Transpose, Reshape,
Flatten, Identity); ``Shape`` readers of its tensors only compute shapes. These
operators copy elements to places that depend on shapes, never on values. So
running the chain once on X = 0, 1, 2, ... (every element distinct) shows where
each output element comes from, for every input: the chain's last rank-4
tensor Y of shape (N, C, sh*H, sw*W) that equals ``repeat(repeat(X, sh, 2),
sw, 3)`` exactly, at batch 1 and 3 (a fixed-batch model: at its batch), is replaced. Anything else is left as it is
(and refused under ``fresh``, naming the node).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

MOVE = ("Unsqueeze", "Squeeze", "Tile", "Expand", "Transpose", "Reshape", "Flatten", "Identity")
ENTRY = ("Unsqueeze", "Tile", "Expand", "Reshape")


def _slice(nodes: list[onnx.NodeProto], producers: dict, target: str, source: str,
           constants: set[str]) -> list[onnx.NodeProto] | None:
    """The nodes that compute ``target`` from ``source`` and constants (in graph order), or None."""
    keep: set[int] = set()
    stack, seen = [target], set()
    while stack:
        name = stack.pop()
        if not name or name in seen or name == source or name in constants:
            continue
        seen.add(name)
        if name not in producers:
            return None  # another graph input
        index = producers[name]
        keep.add(index)
        stack.extend(nodes[index].input)
    return [nodes[i] for i in sorted(keep)]


def _is_upsampling(sub: list[onnx.NodeProto], source: str, source_shape: tuple, target: str, scale: tuple[int, int],
                   initializers: list[onnx.TensorProto], opsets, batches: tuple[int, ...] = (1, 3)) -> bool:
    import onnxruntime as ort

    c, h, w = source_shape[1:]
    if 3 * c * h * w >= 2**24:
        return False  # the probe's values would not all be distinct in float32
    inputs = [helper.make_tensor_value_info(source, onnx.TensorProto.FLOAT, ["N", c, h, w])]
    outputs = [helper.make_tensor_value_info(target, onnx.TensorProto.FLOAT, None)]
    used = {name for node in sub for name in node.input}
    graph = helper.make_graph(sub, "probe", inputs, outputs, [i for i in initializers if i.name in used])
    model = helper.make_model(graph, opset_imports=opsets)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        for batch in batches:
            x = np.arange(batch * c * h * w, dtype=np.float32).reshape(batch, c, h, w)  # every element distinct
            (y,) = session.run([target], {source: x})
            if not np.array_equal(y, np.repeat(np.repeat(x, scale[0], axis=2), scale[1], axis=3)):
                return False
    except Exception:  # the chain does not run on its own: leave it
        return False
    return True


class _Graph:
    """The graph's nodes as they are now, who makes and who reads each tensor, its constants and outputs."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.nodes = list(graph.node)
        self.producers = {name: i for i, node in enumerate(self.nodes) for name in node.output if name}
        self.readers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.nodes:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.constants = {i.name for i in graph.initializer}
        self.constants |= {n.output[0] for n in self.nodes if n.op_type == "Constant"}
        self.outputs = {o.name for o in graph.output}

    def chain(self, node: onnx.NodeProto) -> list[onnx.NodeProto]:
        """``node`` and the single data readers after it, through data-movement operators."""
        chain, tensor = [node], node.output[0]
        while tensor not in self.outputs:
            data = [r for r in self.readers.get(tensor, []) if r.op_type != "Shape"]
            if len(data) != 1 or data[0].op_type not in MOVE or data[0].input[0] != tensor:
                break
            chain.append(data[0])
            tensor = data[0].output[0]
        return chain


def _upsampling(model: onnx.ModelProto, g: _Graph, chain: list[onnx.NodeProto], source: str, shapes: dict,
                batches: tuple[int, ...]):
    """(source, target, scale, the chain up to the target) for the chain's last tensor that up-samples
    ``source``, or None."""
    shape = shapes[source]
    for end in reversed(chain):
        target = end.output[0]
        out = shapes.get(target)
        if not out or len(out) != 4 or out[:2] != shape[:2] or out[2] % shape[2] or out[3] % shape[3]:
            continue
        scale = (out[2] // shape[2], out[3] // shape[3])
        if scale == (1, 1):
            continue
        sub = _slice(g.nodes, g.producers, target, source, g.constants)
        if sub is None:
            continue
        if _is_upsampling(sub, source, shape, target, scale, list(model.graph.initializer),
                          list(model.opset_import), batches):
            return source, target, scale, chain[:chain.index(end) + 1]
    return None


def _find(model: onnx.ModelProto, g: _Graph, shapes: dict, batches: tuple[int, ...]):
    """The first up-sampling written as data movement: (source, target, scale, chain), or None."""
    for node in g.nodes:
        source = node.input[0] if node.input else ""
        shape = shapes.get(source)
        if node.op_type not in ENTRY or not shape or len(shape) != 4 or source in g.constants:
            continue
        if node.op_type == "Reshape" and len(shapes.get(node.output[0], ())) < 5:
            continue  # flattening to a vector is the flatten pass's
        found = _upsampling(model, g, g.chain(node), source, shapes, batches)
        if found:
            return found
    return None


def _replace(graph: onnx.GraphProto, g: _Graph, found, shapes: dict) -> bool:
    """Put one Resize in place of the chain (in place); False (nothing changed) when something else reads it."""
    source, target, scale, chain = found
    nodes = g.nodes
    dropped = {id(n) for n in chain}
    kept = [n for n in nodes if id(n) not in dropped]
    name = f"{target}/scales"
    resize = helper.make_node("Resize", [source, "", name], [target], name=f"{target}/nearest",
                              mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    last = max(i for i, n in enumerate(nodes) if id(n) in dropped)  # the producer of the target
    kept.insert(last - len(chain) + 1, resize)
    constants = g.constants | {name}
    # what only the chain needed (its run-time shapes) goes too
    needed = set(g.outputs)
    live: list[onnx.NodeProto] = []
    for node in reversed(kept):
        if any(o in needed for o in node.output):
            live.append(node)
            needed.update(node.input)
    live.reverse()
    produced = {o for n in live for o in n.output} | constants | {i.name for i in graph.input}
    if any(i and i not in produced for n in live for i in n.input):
        return False  # something else read the chain's inside: leave the model as it is
    graph.initializer.append(numpy_helper.from_array(np.array([1, 1, *scale], np.float32), name))
    del graph.node[:]
    graph.node.extend(live)
    for node in chain:
        for output in node.output:
            if output != target:
                shapes.pop(output, None)
    return True


def rewrite_repeats(model: onnx.ModelProto, shapes: dict[str, tuple], batches: tuple[int, ...] = (1, 3)) -> int:
    """Rewrite nearest up-samplings written as data movement (in place); returns how many. See the module docstring."""
    count = 0
    while True:
        g = _Graph(model.graph)
        found = _find(model, g, shapes, batches)
        if found is None or not _replace(model.graph, g, found, shapes):
            return count
        count += 1
