"""The prepared plain graph: what it holds, and the one change the compiler makes to it."""

from __future__ import annotations

import onnx

from export.prepare.graph import prepare
from tests.export.helpers import op_model, weights


def _model():
    body = "  a = Conv <pads=[1,1,1,1]> (x, w1)\n  b = Relu(a)\n  y = Conv(b, w2)\n"
    return op_model(body, ["N", 3, 6, 5], {"w1": weights(4, 3, 3, 3), "w2": weights(2, 4, 1, 1, seed=1)})


def test_prepare_fixes_the_batch_and_finds_producers_and_consumers():
    graph = prepare(_model())
    assert (graph.input_name, graph.channels, graph.height, graph.width) == ("x", 3, 6, 5)
    assert graph.shapes["x"] == (None, 3, 6, 5) and graph.shapes["a"] == (None, 4, 6, 5)
    assert [n.op_type for n in graph.nodes] == ["Conv", "Relu", "Conv"]
    assert graph.producers["b"] is graph.nodes[1]
    assert graph.consumers["x"] == [graph.nodes[0]] and graph.consumers["w1"] == [graph.nodes[0]]


def test_replace_node_keeps_producers_and_consumers_true():
    graph = prepare(_model())
    old = graph.nodes[0]
    new = onnx.NodeProto()
    new.CopyFrom(old)
    new.input[1] = "w1-folded"
    graph.replace_node(old, new)
    assert graph.nodes[0] is new and graph.producers["a"] is new
    assert graph.consumers["x"] == [new] and graph.consumers["w1-folded"] == [new]
    assert "w1" not in graph.consumers
    assert all(reader is not old for readers in graph.consumers.values() for reader in readers)
