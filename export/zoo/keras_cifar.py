"""A real trained model: the Keras CIFAR-10 CNN of the ``cifar-10-model`` package, converted to ONNX.

The package ships ``cifar_10_model/trained_models/cnn_model.h5`` (Keras 2.9, channels-last): six 3x3
valid convolutions with ReLU then BatchNormalization, max-pools, Flatten, Dense 64-1024-512-10 (the
last with a ReLU too), Dropout (inactive at inference). Input: 32 x 32 RGB, raw 0..255.

The converter reads the architecture from the file's ``model_config`` and the weights with h5py and
writes the ONNX an exporter would: NCHW, Conv (kernel transposed from HWIO to OIHW), Relu,
BatchNormalization, MaxPool, a channels-last Transpose and Flatten (Keras flattens H, W, C), Gemm.
Needs ``h5py`` (the test extra) and ``pip install --no-deps cifar-10-model==7.4.0``; the weights are
never committed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from firmware_sim.errors import ModelError


def h5_path() -> Path:
    found = importlib.util.find_spec("cifar_10_model")
    if found is None:
        raise ModelError("cifar-10-model is not installed: pip install --no-deps cifar-10-model==7.4.0")
    return Path(next(iter(found.submodule_search_locations))) / "trained_models" / "cnn_model.h5"


class _Nodes:
    """The ONNX nodes and initializers written so far."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def init(self, array: np.ndarray, name: str) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def add(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name


def _layer(out: _Nodes, kind: str, c: dict, x: str, tensor) -> str:
    """One Keras layer (class ``kind``, config ``c``) on tensor ``x``, before its activation; its output."""
    name = c["name"]
    if kind == "Conv2D":
        if c["padding"] != "valid" or c["data_format"] != "channels_last":
            raise ValueError(f"unexpected Conv2D config {c}")
        kernel = tensor(name, "kernel").transpose(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
        return out.add("Conv", [x, out.init(kernel, f"{name}.w"), out.init(tensor(name, "bias"), f"{name}.b")], name,
                       kernel_shape=list(c["kernel_size"]), strides=list(c["strides"]))
    if kind == "BatchNormalization":
        params = [tensor(name, p) for p in ("gamma", "beta", "moving_mean", "moving_variance")]
        return out.add("BatchNormalization", [x, *(out.init(p, f"{name}.{i}") for i, p in enumerate(params))], name,
                       epsilon=float(c["epsilon"]))
    if kind == "MaxPooling2D":
        return out.add("MaxPool", [x], name, kernel_shape=list(c["pool_size"]), strides=list(c["strides"]))
    if kind == "Flatten":
        x = out.add("Transpose", [x], name + ".nhwc", perm=[0, 2, 3, 1])  # Keras flattens channels-last
        return out.add("Flatten", [x], name, axis=1)
    if kind == "Dense":
        return out.add("Gemm", [x, out.init(tensor(name, "kernel"), f"{name}.w"),
                                out.init(tensor(name, "bias"), f"{name}.b")], name)
    raise ValueError(f"layer {kind} is not handled by this converter")


def convert(path: Path | None = None) -> onnx.ModelProto:
    import h5py  # the test extra; only this converter needs it

    out = _Nodes()
    with h5py.File(path or h5_path(), "r") as f:
        config = json.loads(f.attrs["model_config"])
        weights = f["model_weights"]

        def tensor(layer: str, name: str) -> np.ndarray:
            return np.asarray(weights[layer][layer][f"{name}:0"], dtype=np.float32)

        x = "input"
        flattened = False
        for layer in config["config"]["layers"]:
            kind, c = layer["class_name"], layer["config"]
            name = c["name"]
            if kind == "InputLayer" or kind == "Dropout":
                continue
            x = _layer(out, kind, c, x, tensor)
            flattened = flattened or kind == "Flatten"
            activation = c.get("activation")
            if activation == "relu":
                x = out.add("Relu", [x], name + ".relu")
            elif activation not in (None, "linear"):
                raise ValueError(f"activation {activation}")
        assert flattened
    graph = helper.make_graph(
        out.nodes, "keras_cifar10_cnn",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, ["batch", 10])],
        out.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
