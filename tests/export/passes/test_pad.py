"""Pad: spatial constant padding folded into the next layer; channel padding pointwise."""

from __future__ import annotations

import numpy as np
import pytest

from export.errors import UnsupportedModel
from export.keyify import KeyifyOptions, keyify
from tests.export.helpers import assert_keyed_equals_plain, op_model, weights

POLICIES = ["fresh", "boundary"]


def _model(pads: list[int], value: float, consumer: str, opset: int = 17):
    body = f"""  a = Conv <pads=[1,1,1,1]> (x, w0)
  p = Pad <mode="constant"> (a, pads, v)
  y = {consumer}
"""
    inits = {"w0": weights(4, 3, 3, 3), "pads": np.array(pads, np.int64), "v": np.array([value], np.float32),
             "w1": weights(5, 4 + pads[1] + pads[5], 3, 3, seed=3)}
    inits["v"] = np.array(value, np.float32)
    return op_model(body, ["N", 3, 9, 7], inits, opset=opset)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("pads, value", [
    ([0, 0, 1, 1, 0, 0, 1, 1], 0.0),
    ([0, 0, 0, 1, 0, 0, 2, 0], 0.0),
    ([0, 0, 2, 2, 0, 0, 2, 2], 1.5),
])
@pytest.mark.parametrize("consumer", [
    "Conv <strides=[2,2]> (p, w1)",
    "Conv <pads=[1,1,1,1]> (p, w1)",
    "MaxPool <kernel_shape=[3,3], strides=[2,2]> (p)",
    "AveragePool <kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1], count_include_pad=0> (p)",
])
def test_spatial_pad_folds_into_the_next_layer(key, policy, pads, value, consumer):
    keyed = assert_keyed_equals_plain(_model(pads, value, consumer), key,
                                      KeyifyOptions(policy=policy, mean=(128.0,), std=(32.0,)))
    if policy == "fresh":  # the Pad node itself is gone: the consumer's gather reads the border from pad rows
        assert [n.op_type for n in keyed.model.graph.node].count("Gather") == 2


@pytest.mark.parametrize("policy", POLICIES)
def test_channel_pad_is_pointwise(key, policy):
    assert_keyed_equals_plain(_model([0, 1, 0, 0, 0, 2, 0, 0], 0.5, "Conv <pads=[1,1,1,1]> (p, w1)"), key,
                              KeyifyOptions(policy=policy))


def test_pad_feeding_something_else_is_refused(key):
    with pytest.raises(UnsupportedModel, match=r"\(Pad\): spatial padding must feed only Conv or pool"):
        keyify(_model([0, 0, 1, 1, 0, 0, 1, 1], 0.0, "Relu(p)"), key, KeyifyOptions(policy="fresh"))


def test_reflect_pad_is_refused(key):
    body = """  a = Conv <pads=[1,1,1,1]> (x, w0)
  p = Pad <mode="reflect"> (a, pads)
  y = Conv (p, w1)
"""
    inits = {"w0": weights(4, 3, 3, 3), "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),
             "w1": weights(5, 4, 3, 3)}
    with pytest.raises(UnsupportedModel, match="mode 'reflect'"):
        keyify(op_model(body, ["N", 3, 9, 7], inits), key, KeyifyOptions(policy="fresh"))
