"""Shared checks for the keyed compiler: keyed(scramble(x)) against plain(x), with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import parser

from edge.transform import AdcTransform
from export.keyify import KeyifyOptions, keyify
from firmware_sim.keys import MasterKey

TOLERANCE = 1e-4


def parse(text: str) -> onnx.ModelProto:
    model = parser.parse_model(text)
    onnx.checker.check_model(model)
    return model


def session(model: onnx.ModelProto, optimise: bool = True) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimise else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def frames(count: int, height: int, width: int, channels: int, seed: int = 0, dtype=np.uint8, top: int = 255):
    rng = np.random.default_rng(seed)
    return rng.integers(0, top + 1, (count, height, width, channels)).astype(dtype)


def plain_input(batch: np.ndarray, mean=None, std=None, scale: float = 1.0) -> np.ndarray:
    """(N, H, W, C) codes -> the plain model's (N, C, H, W) float input."""
    x = batch.astype(np.float32)
    if scale != 1.0:
        x = x * np.float32(scale)
    if mean is not None:
        x = x - np.asarray(mean, np.float32)
    if std is not None:
        x = x / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # (N, H, W, C) -> (N, C, H, W)


def scramble(batch: np.ndarray, key: MasterKey, options: KeyifyOptions) -> np.ndarray:
    transform = AdcTransform(key, options.spec)
    return np.stack([transform(frame, options.epoch) for frame in batch])


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-6))


def run_both(plain: onnx.ModelProto, key: MasterKey, options: KeyifyOptions, batch: np.ndarray):
    """(plain outputs, keyed outputs, keyed models) for one batch of frames."""
    keyed = keyify(plain, key, options)
    inputs = [i for i in plain.graph.input if i.name not in {t.name for t in plain.graph.initializer}]
    want = session(plain, optimise=False).run(None, {inputs[0].name: plain_input(batch, options.mean, options.std)})
    got = session(keyed.model).run(None, {"measurement": scramble(batch, key, options)})
    return want, got, keyed


def restore(output: np.ndarray, spec, key: MasterKey) -> np.ndarray:
    """A dense output back in natural order (for key holders), with ``edge.restore`` (an anchor list over several
    heads too: ``spec.segments`` along ``spec.axis``)."""
    from edge.restore import restore_output

    return restore_output(output, spec, key)


def assert_keyed_equals_plain(plain: onnx.ModelProto, key: MasterKey, options: KeyifyOptions = KeyifyOptions(),
                              batch: np.ndarray | None = None, count: int = 2):
    inputs = [i for i in plain.graph.input if i.name not in {t.name for t in plain.graph.initializer}]
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if batch is None:
        height, width = options.size or (dims[2], dims[3])
        batch = frames(dims[0] or count, height, width, dims[1] or options.spec.channels)  # a fixed batch: its own
    want, got, keyed = run_both(plain, key, options, batch)
    for spec, w, g in zip(keyed.manifest.outputs, want, got):
        if spec.kind == "dense":
            g = restore(g, spec, key)
        assert g.shape == w.shape, (spec.name, g.shape, w.shape)
        error = relative_error(g, w)
        assert error <= TOLERANCE, f"{spec.name}: relative max abs diff {error:.3g}"
    return keyed


def _floats(array: np.ndarray) -> str:
    return ", ".join(f"{v:.7g}" for v in np.asarray(array, np.float64).ravel())


def op_model(body: str, x_shape, initializers: dict | None = None, opset: int = 17, outputs: str = "y",
             extra_inputs: str = "") -> onnx.ModelProto:
    """A tiny model from ONNX text: input ``x`` of ``x_shape`` (N for the batch), ``body`` the nodes."""
    inits = []
    for name, array in (initializers or {}).items():
        array = np.asarray(array)
        if array.ndim == 0:  # the text format has no scalar initializers: a Constant node instead
            kind = "value_float" if array.dtype == np.float32 else "value_int"
            body = f"  {name} = Constant <{kind} = {array.item()}> ()\n" + body
            continue
        kind = {np.dtype(np.float32): "float", np.dtype(np.int64): "int64"}[array.dtype]
        values = _floats(array) if kind == "float" else ", ".join(str(int(v)) for v in array.ravel())
        dims = ",".join(str(d) for d in array.shape)
        inits.append(f"{kind}[{dims}] {name} = {{{values}}}")
    dims = ",".join(str(d) for d in x_shape)
    outs = ", ".join(f"float {name}" for name in outputs.split(","))
    init_text = f"<{', '.join(inits)}>" if inits else ""
    text = f"""
<ir_version: 8, opset_import: ["" : {opset}]>
g (float[{dims}] x{extra_inputs}) => ({outs}) {init_text} {{
{body}
}}
"""
    return parse(text)


def weights(*shape, seed: int = 0, scale: float = 0.5) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)
