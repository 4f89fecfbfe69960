"""Builds the keyed graph: unique names, constants, and opset-aware node helpers.

Every helper returns the name of the tensor it produced. Helpers hide the
opset differences the rewrite meets (axes as inputs or attributes).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


class Builder:
    def __init__(self, opset: int, prefix: str = "keycam") -> None:
        self.opset = opset
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self._counter = 0
        self._constant_cache: dict[tuple, str] = {}

    def reserve(self, name: str) -> str:
        self._names.add(name)
        return name

    def fresh(self, hint: str) -> str:
        while True:
            self._counter += 1
            name = f"{self.prefix}/{hint}/{self._counter}"
            if name not in self._names:
                self._names.add(name)
                return name

    def const(self, array: np.ndarray, hint: str = "const") -> str:
        array = np.asarray(array)
        small = array.size <= 16
        cache_key = (array.dtype.str, array.shape, array.tobytes()) if small else None
        if cache_key is not None and cache_key in self._constant_cache:
            return self._constant_cache[cache_key]
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        if cache_key is not None:
            self._constant_cache[cache_key] = name
        return name

    def ints(self, values, hint: str = "shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def node(self, op: str, inputs: list[str], hint: str | None = None, outputs: list[str] | None = None,
             count: int = 1, **attrs) -> str | list[str]:
        if outputs is None:
            outputs = [self.fresh(hint or op.lower()) for _ in range(count)]
        else:
            for name in outputs:
                self.reserve(name)
        self.nodes.append(helper.make_node(op, inputs, outputs, name=self.fresh(f"{op}"), **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    # -- common shapes of work ------------------------------------------------

    def reshape(self, x: str, shape, hint: str = "reshape", output: str | None = None) -> str:
        return self.node("Reshape", [x, self.ints(shape)], hint, outputs=[output] if output else None)

    def transpose(self, x: str, perm, hint: str = "transpose", output: str | None = None) -> str:
        return self.node("Transpose", [x], hint, outputs=[output] if output else None, perm=list(perm))

    def gather(self, x: str, indices: np.ndarray, axis: int, hint: str = "gather") -> str:
        return self.node("Gather", [x, self.const(np.asarray(indices, dtype=np.int64), f"{hint}-index")], hint,
                         axis=axis)

    def reduce(self, op: str, x: str, axes, keepdims: int, hint: str | None = None) -> str:
        axes = list(axes)
        if op == "ReduceSum" or self.opset >= 18:
            return self.node(op, [x, self.ints(axes, "axes")], hint, keepdims=keepdims)
        return self.node(op, [x], hint, axes=axes, keepdims=keepdims)

    def pad_rows(self, x: str, rows: int, value: float, hint: str = "pad") -> str:
        """(N, R, C) -> (N, R + rows, C), the new rows filled with ``value``."""
        pads = self.ints([0, 0, 0, 0, rows, 0], "pads")
        return self.node("Pad", [x, pads, self.const(np.array(value, dtype=np.float32), "pad-value")], hint,
                         mode="constant")
