"""Channels-last image inputs (TensorFlow's exporters), rewritten to an exact NCHW input.

Keras models take (N, H, W, C) images. tf2onnx (from a Keras model, a SavedModel
or a ``.tflite`` file) keeps that input and puts a Transpose (perm 0,3,1,2)
before the first convolution; in front of it may run a channels-last prefix of
element-wise layers (Keras ``Rescaling``: ``x * s + o``; ``Normalization``:
``(x - m) * r`` with per-channel ``m``, ``r``). keyify's plain input is NCHW,
so the model is rewritten to take X, the same image as (N, C, H, W). With
``T = Transpose(perm 0,2,3,1)`` the old input is ``T(X)``, and:

- ``Transpose(T(t), perm 0,3,1,2) = t``: each Transpose to NCHW of a
  channels-last tensor becomes an Identity of its NCHW twin;
- an element-wise operator commutes with T once its constants are moved too:
  ``f(T(t), c) = T(f(t, c'))`` with ``c'`` = ``c`` broadcast to rank 4
  (right-aligned, as ONNX broadcasts) and transposed by (0, 3, 1, 2). The
  prefix then runs on NCHW tensors: the same arithmetic on the same values,
  bit for bit;
- any other reader of a channels-last tensor ``t`` (or a graph output that is
  one) reads ``T(t')``, a Transpose node put back right after ``t'`` is made.
  The keyed compiler treats that like any channels-last Transpose of a map, or
  refuses it naming the node.

An input is channels-last when it is rank 4, float, its last dimension is 1 or
3 and dimension 1 is not (dynamic, or another size); or, when both are 1 or 3
(a 3 x W x 3 image), when every reader is a Transpose to NCHW.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from firmware_sim.words import PREFIX_BINARY, PREFIX_UNARY

TO_NCHW = [0, 3, 1, 2]
TO_NHWC = [0, 2, 3, 1]


def _perm(node: onnx.NodeProto) -> list[int] | None:
    for attribute in node.attribute:
        if attribute.name == "perm":
            return list(attribute.ints)
    return None


def _dims(value: onnx.ValueInfoProto) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in value.type.tensor_type.shape.dim]


def is_channels_last(value: onnx.ValueInfoProto, readers: list[onnx.NodeProto]) -> bool:
    """See the module docstring."""
    dims = _dims(value)
    if len(dims) != 4 or dims[3] not in (1, 3):
        return False
    if dims[1] not in (1, 3):
        return True
    return bool(readers) and all(n.op_type == "Transpose" and _perm(n) == TO_NCHW for n in readers)


class _Names:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.used = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer}
        self.used |= {o.name for o in model.graph.output}
        for node in model.graph.node:
            self.used.update(node.input)
            self.used.update(node.output)

    def fresh(self, base: str) -> str:
        name, index = f"{base}__nchw", 1
        while name in self.used:
            name, index = f"{base}__nchw{index}", index + 1
        self.used.add(name)
        return name


_CONSTANT_KINDS = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
                   "value_ints": np.int64}


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers and Constant nodes (a tensor, or a float/int scalar or list)."""
    found = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Constant" or len(node.attribute) != 1:
            continue
        attribute = node.attribute[0]
        if attribute.name == "value":
            found[node.output[0]] = numpy_helper.to_array(attribute.t)
        elif attribute.name in _CONSTANT_KINDS:
            found[node.output[0]] = np.array(helper.get_attribute_value(attribute), _CONSTANT_KINDS[attribute.name])
    return found


class _Prefix:
    """One rewrite's state: each channels-last tensor's NCHW twin, where it is made, the nodes written so far."""

    def __init__(self, model: onnx.ModelProto, value: onnx.ValueInfoProto) -> None:
        self.names = _Names(model)
        self.constants = _constants(model)
        self.twin = {value.name: self.names.fresh(value.name)}  # channels-last tensor -> its NCHW twin
        self.made_at: dict[str, int] = {value.name: -1}  # twin made by nodes[index] (-1: the graph input)
        self.read_back: set[str] = set()  # channels-last tensors that something still reads as such
        self.nodes: list[onnx.NodeProto] = []
        self.new_constants: list[onnx.TensorProto] = []

    def movable(self, node: onnx.NodeProto) -> bool:
        twin, constants = self.twin, self.constants
        if len([o for o in node.output if o]) != 1:
            return False
        if node.op_type in PREFIX_BINARY:
            return all(n in twin or (n in constants and constants[n].ndim <= 4) for n in node.input)
        if node.op_type in PREFIX_UNARY:
            return node.input[0] in twin and all(
                not n or (n in constants and constants[n].ndim == 0) for n in node.input[1:])
        return False

    def move(self, node: onnx.NodeProto) -> None:
        """Write ``node`` on the NCHW twins, its constants transposed; its output gets a twin."""
        moved = onnx.NodeProto()
        moved.CopyFrom(node)
        for index, name in enumerate(node.input):
            if name in self.twin:
                moved.input[index] = self.twin[name]
            elif node.op_type in PREFIX_BINARY:
                array = self.constants[name]
                full = array.reshape((1,) * (4 - array.ndim) + array.shape)  # right-aligned to (N, H, W, C)
                moved_name = self.names.fresh(name)
                self.new_constants.append(numpy_helper.from_array(
                    np.ascontiguousarray(full.transpose(TO_NCHW)), moved_name))  # -> (N, C, H, W) broadcast
                moved.input[index] = moved_name
        out = node.output[0]
        self.twin[out] = self.names.fresh(out)
        moved.output[0] = self.twin[out]
        self.made_at[out] = len(self.nodes)
        self.nodes.append(moved)

    def add(self, node: onnx.NodeProto) -> None:
        """The next node of the graph, as it is, as an Identity of a twin, or moved."""
        if not any(n in self.twin for n in node.input):
            self.nodes.append(node)
        elif node.op_type == "Transpose" and _perm(node) == TO_NCHW:
            self.nodes.append(helper.make_node("Identity", [self.twin[node.input[0]]], list(node.output),
                                               name=node.name))
        elif self.movable(node):
            self.move(node)
        else:
            self.read_back.update(n for n in node.input if n in self.twin)
            self.nodes.append(node)

    def put_back(self, outputs) -> list[onnx.NodeProto]:
        """The nodes, with T(t') put back right after each t' that is still read channels-last (or is an output)."""
        self.read_back.update(o.name for o in outputs if o.name in self.twin)
        # latest first so the earlier positions stay valid
        for name in sorted(self.read_back, key=lambda n: self.made_at[n], reverse=True):
            back = helper.make_node("Transpose", [self.twin[name]], [name], name=f"{name}/channels-last",
                                    perm=TO_NHWC)
            self.nodes.insert(self.made_at[name] + 1, back)
        return self.nodes


def _nchw_input(value: onnx.ValueInfoProto, name: str) -> onnx.ValueInfoProto:
    """The input ``value`` (N, H, W, C) as (N, C, H, W), named ``name``."""
    dims = list(value.type.tensor_type.shape.dim)
    nchw = helper.make_tensor_value_info(name, value.type.tensor_type.elem_type, None)
    shape = nchw.type.tensor_type.shape
    for dim in (dims[0], dims[3], dims[1], dims[2]):  # (N, H, W, C) -> (N, C, H, W)
        shape.dim.add().CopyFrom(dim)
    return nchw


def to_channels_first(model: onnx.ModelProto) -> str | None:
    """Rewrite ``model`` (in place) to take its channels-last image input as NCHW; see the module docstring.

    Returns the new input's name, or None (and leaves the model alone) when the input is not channels-last.
    """
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    if len(inputs) != 1:
        return None
    value = inputs[0]
    readers = [n for n in graph.node if value.name in n.input]
    if not is_channels_last(value, readers):
        return None
    prefix = _Prefix(model, value)
    for node in graph.node:
        prefix.add(node)
    nodes = prefix.put_back(graph.output)
    name = prefix.twin[value.name]
    position = list(graph.input).index(value)
    graph.input.remove(value)
    graph.input.insert(position, _nchw_input(value, name))
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(prefix.new_constants)
    return name
