"""onnxruntime's static quantiser, called one way for plain and keyed models alike.

``quant_pre_process`` (onnxruntime's basic graph optimisation and ONNX shape inference; its symbolic
shape inference, meant for transformers and dependent on sympy, is skipped: these are CNNs with static
shapes but the batch), then ``quantize_static``: QDQ format, int8 weights per output channel
(symmetric), uint8 activations per tensor (asymmetric), MinMax calibration over every calibration
batch. The calibration reader feeds numpy batches. The settings are the ones onnxruntime recommends
for CPU inference, the same for a plain model and its keyed twin, so the two can be compared bit for
bit (``export/quantize/__init__.py``).
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import version_converter

from export.errors import ModelError

FORMAT = "QDQ"
WEIGHTS = "int8, per channel, symmetric"
ACTIVATIONS = "uint8, per tensor, asymmetric"
METHOD = "MinMax"
BATCH = 16  # frames per calibration batch (MinMax ranges do not depend on the batching)


def tool() -> str:
    return f"onnxruntime {ort.__version__} (quant_pre_process, quantize_static)"


def batches(frames: Sequence[np.ndarray] | np.ndarray, fixed: int | None = None) -> list[np.ndarray]:
    """A stack of frames (N, ...) cut into batches of at most :data:`BATCH`, or of exactly ``fixed`` frames for a
    model exported with a fixed batch (a remainder that fills no batch is left out)."""
    size = fixed or BATCH
    stop = len(frames) - len(frames) % size if fixed else len(frames)
    return [np.ascontiguousarray(frames[i:i + size]) for i in range(0, stop, size)]


def _reader(input_name: str, data: Iterable[np.ndarray]):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(data)

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    return Reader()


def _opset13(model: onnx.ModelProto, what: str) -> onnx.ModelProto:
    """Per-channel weights need DequantizeLinear's ``axis`` (opset 13); older models (a tflite2onnx export) are
    converted first, as keyify's preparation converts them (keyed models are at 13 or later already)."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    if opset >= 13:
        return model
    try:
        return version_converter.convert_version(model, 13)
    except Exception as error:  # onnx's converter raises its own types
        raise ModelError(f"{what} is at opset {opset} and could not be converted to 13 for per-channel int8 "
                         f"weights: {str(error).splitlines()[0]}") from None


def name_nodes(model: onnx.ModelProto) -> None:
    """Give unnamed nodes a name (``nodes_to_exclude`` names nodes), the same one in a plain model and its twin."""
    names = {n.name for n in model.graph.node}
    for node in model.graph.node:
        if not node.name:
            candidate = f"keycam/quantize/{node.op_type}/{node.output[0]}"
            while candidate in names:
                candidate += "_"
            node.name = candidate
            names.add(candidate)


def output_concats(model: onnx.ModelProto) -> list[str]:
    """Concats that write a graph output, left in float: a detector's head joins boxes in pixels and scores in
    [0, 1] (YOLOv8's output0), and one uint8 grid over both would round every score away."""
    outputs = {o.name for o in model.graph.output}
    return [n.name for n in model.graph.node if n.op_type == "Concat" and set(n.output) & outputs]


def quantize(model: onnx.ModelProto, data: Sequence[np.ndarray], *, exclude: Sequence[str] = (),
             what: str = "model") -> onnx.ModelProto:
    """``model`` quantised by onnxruntime, calibrated on ``data`` (batches for its one input).

    ``exclude``: node names left in float (their inputs are not quantised), besides :func:`output_concats`.
    Raises ModelError, naming ``what``, when onnxruntime cannot quantise the model.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not data:
        raise ModelError(f"{what}: no calibration frames; give at least one")
    work = onnx.ModelProto()
    work.CopyFrom(_opset13(model, what))
    name_nodes(work)
    exclude = sorted(set(exclude) | set(output_concats(work)))
    model = work
    input_name = model.graph.input[0].name
    quiet = logging.getLogger().level
    ort.set_default_logger_severity(3)  # no optimiser warnings on the terminal
    logging.getLogger().setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="keycam-quantize-") as folder, warnings.catch_warnings():
            # ranges of excluded tensors (fresh's -inf pad rows) are computed and dropped: numpy warns, nothing is wrong
            warnings.simplefilter("ignore", RuntimeWarning)
            source, prepared, target = (Path(folder) / name for name in ("in.onnx", "pre.onnx", "out.onnx"))
            onnx.save(model, source)
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared), str(target), _reader(input_name, data), quant_format=QuantFormat.QDQ,
                per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                nodes_to_exclude=list(exclude),  # no CalibMaxIntermediateOutputs: in 1.32 it drops the batches
            )  # it should merge (calibrate.py, collect_data); MinMax keeps two numbers a tensor a batch anyway
            return onnx.load(target)
    except ModelError:
        raise
    except Exception as error:  # onnxruntime's and onnx's own exception types
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelError(f"{what} cannot be quantised by onnxruntime: {first}") from None
    finally:
        logging.getLogger().setLevel(quiet)
        ort.set_default_logger_severity(2)
