"""Asking onnxruntime what a plain operator does, by running it alone on probe inputs.

Some semantics are simplest to read off the runtime that defines them: AveragePool's divisors
(count_include_pad, ceil_mode, clipped windows) and Resize's interpolation weights (every
coordinate mode, nearest mode, cubic coefficient and antialias). The rewrite uses the answers, so
the keyed layer means exactly what the plain one means under onnxruntime. :func:`every_tensor_session`
opens a whole model with every intermediate tensor as an output, to read shapes off a run.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper


def run_node(node: onnx.NodeProto, x: np.ndarray, opset: int,
             initializers: list[onnx.TensorProto] | None = None) -> np.ndarray:
    """Output 0 of ``node`` alone, fed ``x`` as its first input (named ``x``)."""
    import onnxruntime as ort

    graph = helper.make_graph(
        [node], "probe",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None)],
        initializers or [],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x.astype(np.float32)})[0]


def every_tensor_session(model: onnx.ModelProto):
    """(onnxruntime session, output names) of ``model`` with every node output made a graph output, unoptimised."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    for node in probe.graph.node:
        for name in node.output:
            if name and name not in known:
                probe.graph.output.append(onnx.ValueInfoProto(name=name))
                known.add(name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session, [o.name for o in session.get_outputs()]
