"""Reference architectures with random weights, for exactness tests and speed benchmarks: not trained
models: their outputs mean nothing, but keyed must equal plain on them, and the benchmarks time the
keyed twin against the plain network.

Written as exporters write them (Conv, BatchNormalization, Relu, Flatten, Gemm; dynamic batch).
:data:`NETWORKS` registers each by name with its input size and normalisation, so the
whole-network conformance tests (``tests/conformance``) and the benchmarks cover every one.

ResNet-18 (224), CIFAR ResNet-20 (32), VGG-16-bn (32), MobileNetV2 (224) and a small U-Net-style
segmentation net (non-square, Resize and ConvTranspose up-sampling, Concat skips).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


class Net:
    """A tiny graph writer: each method adds nodes and returns the output tensor's name."""

    def __init__(self, channels: int, height: int, width: int, seed: int = 0, opset: int = 17) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.channels: dict[str, int] = {"input": channels}
        self.shape = (channels, height, width)
        self.opset = opset
        self._count = 0

    def _name(self, kind: str) -> str:
        self._count += 1
        return f"{kind}_{self._count}"

    def _init(self, array: np.ndarray, kind: str) -> str:
        name = self._name(kind)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def _node(self, op: str, inputs: list[str], channels: int, **attrs) -> str:
        out = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out + "_node", **attrs))
        self.channels[out] = channels
        return out

    def conv(self, x: str, c_out: int, k: int, s: int = 1, p: int | None = None, groups: int = 1,
             bias: bool = False) -> str:
        c_in = self.channels[x]
        p = k // 2 if p is None else p
        fan_in = c_in // groups * k * k
        w = (self.rng.standard_normal((c_out, c_in // groups, k, k)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        inputs = [x, self._init(w, "w")]
        if bias:
            inputs.append(self._init(self.rng.standard_normal(c_out).astype(np.float32) * 0.1, "b"))
        return self._node("Conv", inputs, c_out, kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p],
                          group=groups)

    def bn(self, x: str) -> str:
        c = self.channels[x]
        r = self.rng
        params = [
            1.0 + 0.1 * r.standard_normal(c), 0.1 * r.standard_normal(c),
            0.1 * r.standard_normal(c), 1.0 + 0.1 * np.abs(r.standard_normal(c)),
        ]
        names = [self._init(p.astype(np.float32), "bn") for p in params]
        return self._node("BatchNormalization", [x, *names], c, epsilon=1e-5)

    def relu(self, x: str) -> str:
        return self._node("Relu", [x], self.channels[x])

    def relu6(self, x: str) -> str:
        lo = self._init(np.array(0.0, np.float32), "lo")
        hi = self._init(np.array(6.0, np.float32), "hi")
        return self._node("Clip", [x, lo, hi], self.channels[x])

    def cbr(self, x: str, c_out: int, k: int = 3, s: int = 1, groups: int = 1, act: str = "relu") -> str:
        y = self.bn(self.conv(x, c_out, k, s, groups=groups))
        return {"relu": self.relu, "relu6": self.relu6, "none": lambda v: v}[act](y)

    def add(self, a: str, b: str) -> str:
        return self._node("Add", [a, b], self.channels[a])

    def maxpool(self, x: str, k: int, s: int, p: int = 0) -> str:
        return self._node("MaxPool", [x], self.channels[x], kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])

    def gap(self, x: str) -> str:
        return self._node("GlobalAveragePool", [x], self.channels[x])

    def flatten(self, x: str) -> str:
        return self._node("Flatten", [x], self.channels[x], axis=1)

    def gemm(self, x: str, n_in: int, n_out: int) -> str:
        w = (self.rng.standard_normal((n_out, n_in)) * np.sqrt(1.0 / n_in)).astype(np.float32)
        b = self.rng.standard_normal(n_out).astype(np.float32) * 0.1
        return self._node("Gemm", [x, self._init(w, "fc"), self._init(b, "fcb")], n_out, transB=1)

    def concat(self, *xs: str) -> str:
        return self._node("Concat", list(xs), sum(self.channels[x] for x in xs), axis=1)

    def upsample(self, x: str) -> str:
        scales = self._init(np.array([1, 1, 2, 2], np.float32), "scales")
        return self._node("Resize", [x, "", scales], self.channels[x], mode="nearest")

    def up_conv(self, x: str, c_out: int) -> str:
        c_in = self.channels[x]
        w = (self.rng.standard_normal((c_in, c_out, 2, 2)) * np.sqrt(2.0 / (c_in * 4))).astype(np.float32)
        return self._node("ConvTranspose", [x, self._init(w, "wt")], c_out, kernel_shape=[2, 2], strides=[2, 2])

    def model(self, output: str, name: str) -> onnx.ModelProto:
        c, h, w = self.shape
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", c, h, w])],
            [helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None)],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 8
        return model


def resnet18(size: int = 224, classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    n = Net(3, size, size, seed)
    x = n.maxpool(n.cbr("input", 64, 7, 2), 3, 2, 1)
    for stage, width in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            if stride != 1 or n.channels[x] != width:
                shortcut = n.bn(n.conv(x, width, 1, stride, p=0))
            y = n.cbr(x, width, 3, stride)
            y = n.bn(n.conv(y, width, 3))
            x = n.relu(n.add(y, shortcut))
    return n.model(n.gemm(n.flatten(n.gap(x)), 512, classes), "resnet18")


def resnet20(size: int = 32, classes: int = 10, seed: int = 0) -> onnx.ModelProto:
    n = Net(3, size, size, seed)
    x = n.cbr("input", 16)
    for stage, width in enumerate((16, 32, 64)):
        for block in range(3):
            stride = 2 if stage > 0 and block == 0 else 1
            shortcut = x if stride == 1 else n.bn(n.conv(x, width, 1, stride, p=0))
            y = n.bn(n.conv(n.cbr(x, width, 3, stride), width, 3))
            x = n.relu(n.add(y, shortcut))
    return n.model(n.gemm(n.flatten(n.gap(x)), 64, classes), "resnet20")


def vgg16_bn(size: int = 32, classes: int = 10, seed: int = 0) -> onnx.ModelProto:
    n = Net(3, size, size, seed)
    x = "input"
    for item in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        x = n.maxpool(x, 2, 2) if item == "M" else n.cbr(x, item)
    x = n.relu(n.gemm(n.flatten(x), 512 * (size // 32) ** 2, 512))
    return n.model(n.gemm(x, 512, classes), "vgg16_bn")


def mobilenet_v2(size: int = 224, classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    n = Net(3, size, size, seed)
    x = n.cbr("input", 32, 3, 2, act="relu6")
    for t, c, repeats, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                             (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(repeats):
            stride = s if i == 0 else 1
            c_in = n.channels[x]
            hidden = c_in * t
            y = x if t == 1 else n.cbr(x, hidden, 1, act="relu6")
            y = n.cbr(y, hidden, 3, stride, groups=hidden, act="relu6")
            y = n.cbr(y, c, 1, act="none")
            x = n.add(y, x) if stride == 1 and c_in == c else y
    x = n.cbr(x, 1280, 1, act="relu6")
    return n.model(n.gemm(n.flatten(n.gap(x)), 1280, classes), "mobilenet_v2")


def unet(height: int = 48, width: int = 64, classes: int = 5, seed: int = 0) -> onnx.ModelProto:
    n = Net(3, height, width, seed)
    e1 = n.cbr(n.cbr("input", 16), 16)
    e2 = n.cbr(n.cbr(n.maxpool(e1, 2, 2), 32), 32)
    b = n.cbr(n.cbr(n.maxpool(e2, 2, 2), 64), 64)
    d2 = n.cbr(n.cbr(n.concat(n.up_conv(b, 32), e2), 32), 32)  # ConvTranspose up-sampling
    d1 = n.cbr(n.cbr(n.concat(n.upsample(d2), e1), 16), 16)  # Resize up-sampling
    return n.model(n.conv(d1, classes, 1, bias=True), "unet")


IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
CIFAR_MEAN = (125.3, 123.0, 113.9)
CIFAR_STD = (63.0, 62.1, 66.7)

NETWORKS = {
    # name: (builder, (H, W), mean, std)
    "resnet18": (resnet18, (224, 224), IMAGENET_MEAN, IMAGENET_STD),
    "resnet20": (resnet20, (32, 32), CIFAR_MEAN, CIFAR_STD),
    "vgg16_bn": (vgg16_bn, (32, 32), CIFAR_MEAN, CIFAR_STD),
    "mobilenet_v2": (mobilenet_v2, (224, 224), IMAGENET_MEAN, IMAGENET_STD),
    "unet": (unet, (48, 64), IMAGENET_MEAN, IMAGENET_STD),
}
