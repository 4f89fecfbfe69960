"""Pools and spatial reductions: every attribute combination, both policies."""

from __future__ import annotations

import pytest

from export.keyify import KeyifyOptions
from tests.export.helpers import assert_keyed_equals_plain, op_model, weights

POLICIES = ["fresh", "boundary"]

POOLS = {
    "max-2x2-s2": "MaxPool <kernel_shape=[2,2], strides=[2,2]>",
    "max-3x3-s2-pad1": "MaxPool <kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]>",
    "max-3x3-s1-asym": "MaxPool <kernel_shape=[3,3], pads=[0,1,2,1]>",
    "max-dilated": "MaxPool <kernel_shape=[2,2], strides=[1,1], dilations=[2,2]>",
    "max-ceil": "MaxPool <kernel_shape=[3,3], strides=[2,2], ceil_mode=1>",
    "max-ceil-pad": "MaxPool <kernel_shape=[2,2], strides=[2,2], pads=[1,1,1,1], ceil_mode=1>",
    "max-same-upper": 'MaxPool <kernel_shape=[3,3], strides=[2,2], auto_pad="SAME_UPPER">',
    "avg-2x2-s2": "AveragePool <kernel_shape=[2,2], strides=[2,2]>",
    "avg-3x3-pad-exclude": "AveragePool <kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1], count_include_pad=0>",
    "avg-3x3-pad-include": "AveragePool <kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1], count_include_pad=1>",
    "avg-ceil-exclude": "AveragePool <kernel_shape=[3,3], strides=[2,2], ceil_mode=1>",
    "avg-ceil-include": "AveragePool <kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1], ceil_mode=1, count_include_pad=1>",
    "avg-asym-include": "AveragePool <kernel_shape=[3,2], pads=[1,0,0,1], count_include_pad=1>",
    "avg-same-lower": 'AveragePool <kernel_shape=[2,2], strides=[2,2], auto_pad="SAME_LOWER">',
}

GLOBAL = {
    "global-avg": "y = GlobalAveragePool(h)",
    "global-max": "y = GlobalMaxPool(h)",
    "reduce-mean-keep": "y = ReduceMean <axes=[2,3]> (h)",
    "reduce-max-drop": "y = ReduceMax <axes=[2,3], keepdims=0> (h)",
    "reduce-mean-negative-axes": "y = ReduceMean <axes=[-1,-2], keepdims=0> (h)",
    "reduce-sum-axes-input": "y = ReduceSum <keepdims=1> (h, axes)",
    "reduce-mean-channels": "y = ReduceMean <axes=[1]> (h)",
    "reduce-max-opset18-axes-input": "y = ReduceMax <keepdims=0> (h, axes)",
}


def _stem(height: int = 11, width: int = 9) -> tuple[str, dict]:
    return "  c = Conv <pads=[1,1,1,1]> (x, w, b)\n  h = Relu(c)\n", {"w": weights(5, 3, 3, 3), "b": weights(5)}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("case", sorted(POOLS))
def test_windowed_pool(key, case, policy):
    stem, inits = _stem()
    model = op_model(stem + f"  y = {POOLS[case]} (h)\n", ["N", 3, 11, 9], inits)
    keyed = assert_keyed_equals_plain(model, key, KeyifyOptions(policy=policy))
    ops = [n.op_type for n in keyed.model.graph.node]
    if policy == "fresh":
        assert "MaxPool" not in ops and "AveragePool" not in ops and ops.count("Gather") == 2


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("case", sorted(GLOBAL))
def test_global_reductions(key, case, policy):
    import numpy as np

    stem, inits = _stem()
    if "axes-input" in case:
        inits["axes"] = np.array([2, 3], dtype=np.int64)
    model = op_model(stem + "  " + GLOBAL[case] + "\n", ["N", 3, 11, 9], inits, opset=18 if "opset18" in case else 17)
    assert_keyed_equals_plain(model, key, KeyifyOptions(policy=policy))


def test_pool_after_pool_and_a_classifier_head(key):
    stem, inits = _stem()
    inits.update({"fc": weights(5, 4), "fb": weights(4)})
    body = stem + """  p = MaxPool <kernel_shape=[2,2], strides=[2,2]> (h)
  q = AveragePool <kernel_shape=[2,2], strides=[1,1]> (p)
  g = GlobalAveragePool(q)
  f = Flatten(g)
  y = Gemm(f, fc, fb)
"""
    for policy in POLICIES:
        keyed = assert_keyed_equals_plain(op_model(body, ["N", 3, 11, 9], inits), key, KeyifyOptions(policy=policy))
        assert keyed.manifest.outputs[0].kind == "plain"
