"""The attacker's best plain model: the plain network fine-tuned on labelled scrambled images.

The paper's table (Perez, Lopez and Arguello, ICASSP 2024) has a row the other attacks do not
cover: an attacker who has labelled measurements of the camera (images they know the class of, read
out under the victim's layout L0) and fine-tunes the plain network on them. A convolution's taps
assume that neighbouring inputs are neighbouring pixels; on a measurement x' = x[L0] they are not,
so the fine-tuned network can only learn what survives the permutation (which codes occur, in which
fixed positions), much like a fully connected network on permuted pixels. The paper's CIFAR-10
VGG-16 reaches 57.6 % this way (plain 94.1 %).

To fine-tune, the plain ONNX model is turned into a trainable PyTorch module by :class:`OnnxModule`,
a small interpreter of the graph: every float initializer becomes a parameter, every node a call to
the matching ``torch.nn.functional`` operation, in the graph's (topological) order. It covers the
operators of keycam's CNNs (Conv, BatchNormalization, Relu and friends, Max/Average/GlobalAverage
pooling, Flatten, Reshape, Transpose, Gemm, MatMul, Add/Sub/Mul/Div, Concat, Softmax, Identity,
Dropout, Constant) and declines anything else, naming the node, the op and why
(:class:`~export.errors.UnsupportedModel`). BatchNormalization runs in inference form (its
running statistics stay fixed; its scale and shift train), so the converted module computes what
onnxruntime computes on the same input, to float rounding (tested).

PyTorch is an optional extra (``pip install torch==2.13.0``): this module imports it on first use,
and keycam's device code never does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from export.errors import UnsupportedModel

TORCH_HINT = "install the torch extra: pip install torch==2.13.0"


def require_torch():
    """The torch module, or ImportError naming the fix."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(f"fine-tuning on scrambled images needs PyTorch, which is not installed; {TORCH_HINT}") \
            from error
    return torch


_torch = require_torch


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pairs(pads: list[int]) -> tuple[list[int], list[int]]:
    half = len(pads) // 2
    return list(pads[:half]), list(pads[half:])  # (begins per spatial axis, ends per spatial axis)


def OnnxModule(model: onnx.ModelProto | str | Path):  # noqa: N802 (a class factory: torch is imported lazily)
    """A trainable ``torch.nn.Module`` computing the ONNX ``model`` (one input, first output)."""
    torch = _torch()
    functional = torch.nn.functional
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    graph = model.graph
    initial = {i.name for i in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initial]
    if len(inputs) != 1:
        raise UnsupportedModel(graph.name or "graph", "Graph", f"{len(inputs)} inputs; fine-tuning needs exactly 1")

    def pad_for(node, attrs, rank, value):
        """Explicit (possibly asymmetric) padding as F.pad's flat list, or None."""
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise UnsupportedModel(node.name, node.op_type, f"auto_pad={attrs['auto_pad']!r}; "
                                   "re-export the model with explicit pads")
        begins, ends = _pairs(attrs.get("pads", [0] * (2 * rank)))
        flat = []
        for b, e in zip(reversed(begins), reversed(ends)):  # F.pad lists the last axis first
            flat += [b, e]
        return flat if any(flat) else None

    class _Module(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.params = torch.nn.ParameterList()
            self.names: dict[str, tuple[str, int]] = {}  # tensor name -> ("p" parameter | "b" buffer, index)
            self.buffers_: list[torch.Tensor] = []
            for init in graph.initializer:
                array = numpy_helper.to_array(init)
                if array.dtype.kind == "f":
                    self.names[init.name] = ("p", len(self.params))
                    self.params.append(torch.nn.Parameter(torch.from_numpy(array.astype(np.float32).copy())))
                else:
                    self.names[init.name] = ("b", len(self.buffers_))
                    self.buffers_.append(torch.from_numpy(array.copy()))
            self.nodes = list(graph.node)
            self.input_name = inputs[0]
            self.output_name = graph.output[0].name
            for node in self.nodes:
                if node.op_type not in _OPS:
                    raise UnsupportedModel(node.name, node.op_type, "no PyTorch equivalent in export.finetune; "
                                           f"supported: {', '.join(sorted(_OPS))}")
                if node.op_type == "BatchNormalization":  # running statistics stay fixed: buffers, not parameters
                    for name in node.input[3:5]:
                        kind, index = self.names[name]
                        if kind == "p":
                            self.params[index].requires_grad_(False)

        def tensor(self, name: str, env: dict):
            if name in env:
                return env[name]
            kind, index = self.names[name]
            return self.params[index] if kind == "p" else self.buffers_[index]

        def forward(self, x):
            env = {self.input_name: x}
            for node in self.nodes:
                args = [self.tensor(n, env) if n else None for n in node.input]
                env[node.output[0]] = _OPS[node.op_type](node, _attributes(node), args)
            return env[self.output_name]

    def conv(node, attrs, args):
        x, w = args[0], args[1]
        bias = args[2] if len(args) > 2 else None
        rank = w.dim() - 2
        pads = pad_for(node, attrs, rank, 0.0)
        if pads:
            x = functional.pad(x, pads)
        op = {1: functional.conv1d, 2: functional.conv2d, 3: functional.conv3d}[rank]
        return op(x, w, bias, stride=attrs.get("strides", 1), dilation=attrs.get("dilations", 1),
                  groups=attrs.get("group", 1))

    def max_pool(node, attrs, args):
        kernel = attrs["kernel_shape"]
        pads = pad_for(node, attrs, len(kernel), float("-inf"))
        x = functional.pad(args[0], pads, value=float("-inf")) if pads else args[0]
        op = {1: functional.max_pool1d, 2: functional.max_pool2d, 3: functional.max_pool3d}[len(kernel)]
        return op(x, kernel, stride=attrs.get("strides", kernel), dilation=attrs.get("dilations", 1),
                  ceil_mode=bool(attrs.get("ceil_mode", 0)))

    def average_pool(node, attrs, args):
        kernel = attrs["kernel_shape"]
        begins, ends = _pairs(attrs.get("pads", [0] * (2 * len(kernel))))
        if begins != ends or attrs.get("ceil_mode", 0):
            raise UnsupportedModel(node.name, node.op_type, f"asymmetric pads {attrs.get('pads')} or ceil_mode")
        op = {1: functional.avg_pool1d, 2: functional.avg_pool2d, 3: functional.avg_pool3d}[len(kernel)]
        return op(args[0], kernel, stride=attrs.get("strides", kernel), padding=begins,
                  count_include_pad=bool(attrs.get("count_include_pad", 0)))

    def batch_norm(node, attrs, args):
        x, scale, bias, mean, var = args[:5]
        return functional.batch_norm(x, mean, var, scale, bias, training=False, eps=attrs.get("epsilon", 1e-5))

    def gemm(node, attrs, args):
        a, b = args[0], args[1]
        a = a.t() if attrs.get("transA", 0) else a
        b = b.t() if attrs.get("transB", 0) else b
        y = attrs.get("alpha", 1.0) * (a @ b)
        return y + attrs.get("beta", 1.0) * args[2] if len(args) > 2 and args[2] is not None else y

    def flatten(node, attrs, args):
        axis = attrs.get("axis", 1)
        x = args[0]
        return x.reshape(int(np.prod(x.shape[:axis])), -1)  # (d0..d_axis-1, rest)

    def reshape(node, attrs, args):
        x, shape = args[0], [int(s) for s in args[1].tolist()]
        shape = [x.shape[i] if s == 0 and not attrs.get("allowzero", 0) else s for i, s in enumerate(shape)]
        return x.reshape(shape)

    def constant(node, attrs, args):
        if "value" not in attrs:
            raise UnsupportedModel(node.name, node.op_type, "only Constant with a tensor `value` is supported")
        return torch.from_numpy(numpy_helper.to_array(attrs["value"]).copy())

    def clip(node, attrs, args):
        low = args[1] if len(args) > 1 and args[1] is not None else attrs.get("min")
        high = args[2] if len(args) > 2 and args[2] is not None else attrs.get("max")
        return torch.clamp(args[0], min=None if low is None else float(low), max=None if high is None else float(high))

    _OPS = {
        "Conv": conv,
        "MaxPool": max_pool,
        "AveragePool": average_pool,
        "GlobalAveragePool": lambda n, a, x: x[0].mean(dim=tuple(range(2, x[0].dim())), keepdim=True),
        "BatchNormalization": batch_norm,
        "Relu": lambda n, a, x: functional.relu(x[0]),
        "LeakyRelu": lambda n, a, x: functional.leaky_relu(x[0], a.get("alpha", 0.01)),
        "Sigmoid": lambda n, a, x: torch.sigmoid(x[0]),
        "Tanh": lambda n, a, x: torch.tanh(x[0]),
        "Clip": clip,
        "Softmax": lambda n, a, x: torch.softmax(x[0], dim=a.get("axis", -1)),
        "Add": lambda n, a, x: x[0] + x[1],
        "Sub": lambda n, a, x: x[0] - x[1],
        "Mul": lambda n, a, x: x[0] * x[1],
        "Div": lambda n, a, x: x[0] / x[1],
        "Concat": lambda n, a, x: torch.cat(x, dim=a["axis"]),
        "Gemm": gemm,
        "MatMul": lambda n, a, x: x[0] @ x[1],
        "Flatten": flatten,
        "Reshape": reshape,
        "Transpose": lambda n, a, x: x[0].permute(*a.get("perm", list(reversed(range(x[0].dim()))))),
        "Identity": lambda n, a, x: x[0],
        "Dropout": lambda n, a, x: x[0],  # inference form; fine-tuning adds no dropout the model did not use
        "Constant": constant,
    }
    return _Module()


def predict(module, inputs: np.ndarray, batch: int = 1000) -> np.ndarray:
    """Class predictions (N,) of ``module`` for float inputs (N, C, H, W)."""
    torch = _torch()
    module.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch):
            out.append(module(torch.from_numpy(inputs[start:start + batch])).argmax(dim=1).numpy())
    return np.concatenate(out)


def finetune(model: onnx.ModelProto | str | Path, inputs: np.ndarray, labels: np.ndarray, epochs: int,
             batch: int = 128, learning_rate: float = 1e-3, seed: int = 0, progress=None):
    """The plain ``model`` fine-tuned (Adam, cross-entropy, all weights) on float ``inputs`` (N, C, H, W).

    ``inputs`` are the model's own input form (normalised as for the plain model) of the training
    measurements. ``progress`` is called after each epoch with (epoch, mean training loss).
    """
    torch = _torch()
    if epochs < 1:
        raise ValueError(f"fine-tuning for {epochs} epochs: give at least 1")
    if len(inputs) != len(labels) or len(inputs) == 0:
        raise ValueError(f"{len(inputs)} training inputs and {len(labels)} labels: give as many of each, at least 1")
    torch.manual_seed(seed)
    module = OnnxModule(model)
    x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    trainable = [p for p in module.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(trainable, lr=learning_rate)
    steps = epochs * max(1, (len(x) + batch - 1) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=learning_rate, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        module.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), batch):
            chosen = order[start:start + batch]
            loss = torch.nn.functional.cross_entropy(module(x[chosen]), y[chosen])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(chosen)
        if progress:
            progress(epoch, total / len(x))
    return module
