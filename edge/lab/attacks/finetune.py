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
(a :class:`~edge.errors.LabError` naming them). BatchNormalization runs in inference form (its
running statistics stay fixed; its scale and shift train), so the converted module computes what
onnxruntime computes on the same input, to float rounding (tested).

PyTorch is an optional extra (``pip install torch==2.13.0``): this module imports it on first use,
and keycam's device code never does. It belongs to the lab (it is an attacker, not a compiler pass),
which may read ONNX graphs; the device core never imports it (tests/test_boundaries.py).
"""

from __future__ import annotations

import operator
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edge.errors import LabError

TORCH_HINT = "install the torch extra: pip install torch==2.13.0"


def UnsupportedModel(node: str, op: str, reason: str) -> LabError:  # noqa: N802 - reads as the error it makes
    """The interpreter declines a node: the error names it, its operator and why."""
    return LabError(f"node {node!r} ({op}): {reason}")


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


def _pad_for(node: onnx.NodeProto, attrs: dict, rank: int) -> list[int] | None:
    """Explicit (possibly asymmetric) padding as F.pad's flat list, or None."""
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UnsupportedModel(node.name, node.op_type, f"auto_pad={attrs['auto_pad']!r}; "
                               "re-export the model with explicit pads")
    begins, ends = _pairs(attrs.get("pads", [0] * (2 * rank)))
    flat = []
    for b, e in zip(reversed(begins), reversed(ends)):  # F.pad lists the last axis first
        flat += [b, e]
    return flat if any(flat) else None


# -- the operators: each (torch, node, attributes, inputs) -> output ---------------------------------------------

def _conv(torch, node, attrs, args):
    functional = torch.nn.functional
    x, w = args[0], args[1]
    bias = args[2] if len(args) > 2 else None
    rank = w.dim() - 2
    pads = _pad_for(node, attrs, rank)
    if pads:
        x = functional.pad(x, pads)
    op = {1: functional.conv1d, 2: functional.conv2d, 3: functional.conv3d}[rank]
    return op(x, w, bias, stride=attrs.get("strides", 1), dilation=attrs.get("dilations", 1),
              groups=attrs.get("group", 1))


def _max_pool(torch, node, attrs, args):
    functional = torch.nn.functional
    kernel = attrs["kernel_shape"]
    pads = _pad_for(node, attrs, len(kernel))
    x = functional.pad(args[0], pads, value=float("-inf")) if pads else args[0]
    op = {1: functional.max_pool1d, 2: functional.max_pool2d, 3: functional.max_pool3d}[len(kernel)]
    return op(x, kernel, stride=attrs.get("strides", kernel), dilation=attrs.get("dilations", 1),
              ceil_mode=bool(attrs.get("ceil_mode", 0)))


def _average_pool(torch, node, attrs, args):
    functional = torch.nn.functional
    kernel = attrs["kernel_shape"]
    begins, ends = _pairs(attrs.get("pads", [0] * (2 * len(kernel))))
    if begins != ends or attrs.get("ceil_mode", 0):
        raise UnsupportedModel(node.name, node.op_type, f"asymmetric pads {attrs.get('pads')} or ceil_mode")
    op = {1: functional.avg_pool1d, 2: functional.avg_pool2d, 3: functional.avg_pool3d}[len(kernel)]
    return op(args[0], kernel, stride=attrs.get("strides", kernel), padding=begins,
              count_include_pad=bool(attrs.get("count_include_pad", 0)))


def _batch_norm(torch, node, attrs, args):
    x, scale, bias, mean, var = args[:5]
    return torch.nn.functional.batch_norm(x, mean, var, scale, bias, training=False, eps=attrs.get("epsilon", 1e-5))


def _gemm(torch, node, attrs, args):
    a, b = args[0], args[1]
    a = a.t() if attrs.get("transA", 0) else a
    b = b.t() if attrs.get("transB", 0) else b
    y = attrs.get("alpha", 1.0) * (a @ b)
    return y + attrs.get("beta", 1.0) * args[2] if len(args) > 2 and args[2] is not None else y


def _flatten(torch, node, attrs, args):
    axis = attrs.get("axis", 1)
    x = args[0]
    return x.reshape(int(np.prod(x.shape[:axis])), -1)  # (d0..d_axis-1, rest)


def _reshape(torch, node, attrs, args):
    x, shape = args[0], [int(s) for s in args[1].tolist()]
    shape = [x.shape[i] if s == 0 and not attrs.get("allowzero", 0) else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _constant(torch, node, attrs, args):
    if "value" not in attrs:
        raise UnsupportedModel(node.name, node.op_type, "only Constant with a tensor `value` is supported")
    return torch.from_numpy(numpy_helper.to_array(attrs["value"]).copy())


def _clip(torch, node, attrs, args):
    low = args[1] if len(args) > 1 and args[1] is not None else attrs.get("min")
    high = args[2] if len(args) > 2 and args[2] is not None else attrs.get("max")
    return torch.clamp(args[0], min=None if low is None else float(low), max=None if high is None else float(high))


UNARY = {
    "Relu": lambda t, n, a, x: t.nn.functional.relu(x[0]),
    "LeakyRelu": lambda t, n, a, x: t.nn.functional.leaky_relu(x[0], a.get("alpha", 0.01)),
    "Sigmoid": lambda t, n, a, x: t.sigmoid(x[0]),
    "Tanh": lambda t, n, a, x: t.tanh(x[0]),
    "Clip": _clip,
    "Identity": lambda t, n, a, x: x[0],
    "Dropout": lambda t, n, a, x: x[0],  # inference form; fine-tuning adds no dropout the model did not use
}
"""The element-wise operators the interpreter runs (a part of ``firmware_sim.words.ELEMENTWISE_UNARY``)."""

BINARY = {"Add": operator.add, "Sub": operator.sub, "Mul": operator.mul, "Div": operator.truediv}
"""The element-wise operators between two tensors it runs (a part of ``firmware_sim.words.ELEMENTWISE_BINARY``)."""

_OPS = {
    "Conv": _conv,
    "MaxPool": _max_pool,
    "AveragePool": _average_pool,
    "GlobalAveragePool": lambda t, n, a, x: x[0].mean(dim=tuple(range(2, x[0].dim())), keepdim=True),
    "BatchNormalization": _batch_norm,
    **UNARY,
    "Softmax": lambda t, n, a, x: t.softmax(x[0], dim=a.get("axis", -1)),
    **{op: (lambda t, n, a, x, f=f: f(x[0], x[1])) for op, f in BINARY.items()},
    "Concat": lambda t, n, a, x: t.cat(x, dim=a["axis"]),
    "Gemm": _gemm,
    "MatMul": lambda t, n, a, x: x[0] @ x[1],
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": lambda t, n, a, x: x[0].permute(*a.get("perm", list(reversed(range(x[0].dim()))))),
    "Constant": _constant,
}
"""Every operator the interpreter runs, by name."""


def _module_class(torch):
    """The ``torch.nn.Module`` class of an interpreted graph (made here: torch is imported on first use)."""

    class _Module(torch.nn.Module):
        def __init__(self, graph: onnx.GraphProto, input_name: str) -> None:
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
            self.input_name = input_name
            self.output_name = graph.output[0].name
            for node in self.nodes:
                if node.op_type not in _OPS:
                    raise UnsupportedModel(node.name, node.op_type, "no PyTorch equivalent in edge.lab.attacks.finetune; "
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
                env[node.output[0]] = _OPS[node.op_type](torch, node, _attributes(node), args)
            return env[self.output_name]

    return _Module


def OnnxModule(model: onnx.ModelProto | str | Path):  # noqa: N802 (a class factory: torch is imported lazily)
    """A trainable ``torch.nn.Module`` computing the ONNX ``model`` (one input, first output)."""
    torch = _torch()
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    graph = model.graph
    initial = {i.name for i in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initial]
    if len(inputs) != 1:
        raise UnsupportedModel(graph.name or "graph", "Graph", f"{len(inputs)} inputs; fine-tuning needs exactly 1")
    return _module_class(torch)(graph, inputs[0])


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
    return fit(module, trainable, x, y, torch.nn.functional.cross_entropy, epochs, batch, learning_rate, seed,
               progress)


def fit(module, parameters, x, y, loss, epochs: int, batch: int, learning_rate: float, seed: int, progress=None):
    """Train ``module``'s ``parameters`` on tensors (``x``, ``y``): Adam under a one-cycle schedule, ``epochs`` passes
    over batches in a seeded random order, ``loss(module(x), y)``; ``progress(epoch, mean loss)`` after each pass.
    Returns the module. (The lab's one training loop: fine-tuning here, the inverter in ``inversion.py``.)"""
    torch = _torch()
    optimiser = torch.optim.Adam(parameters, lr=learning_rate)
    steps = epochs * max(1, (len(x) + batch - 1) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=learning_rate, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        module.train()
        order, total = torch.randperm(len(x), generator=generator), 0.0
        for start in range(0, len(x), batch):
            chosen = order[start:start + batch]
            value = loss(module(x[chosen]), y[chosen])
            optimiser.zero_grad()
            value.backward()
            optimiser.step()
            schedule.step()
            total += value.item() * len(chosen)
        if progress:
            progress(epoch, total / len(x))
    return module
