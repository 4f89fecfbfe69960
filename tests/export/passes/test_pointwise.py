"""Pointwise operators on feature maps: activations, BatchNormalization, PRelu, channel Softmax."""

from __future__ import annotations

import numpy as np
import pytest

from export.keyify import KeyifyOptions
from tests.export.helpers import assert_keyed_equals_plain, op_model, weights

POLICIES = ["fresh", "boundary"]

ACTIVATIONS = {
    "Relu": "Relu(h)", "LeakyRelu": "LeakyRelu <alpha=0.2> (h)", "Sigmoid": "Sigmoid(h)",
    "HardSigmoid": "HardSigmoid <alpha=0.3, beta=0.4> (h)", "HardSwish": "HardSwish(h)", "Tanh": "Tanh(h)",
    "Elu": "Elu <alpha=0.7> (h)", "Selu": "Selu(h)", "Celu": "Celu <alpha=1.3> (h)", "Softplus": "Softplus(h)",
    "Softsign": "Softsign(h)", "ThresholdedRelu": "ThresholdedRelu <alpha=0.1> (h)", "Mish": "Mish(h)",
    "Erf": "Erf(h)", "Abs": "Abs(h)", "Neg": "Neg(h)", "Exp": "Exp(h)", "Sin": "Sin(h)",
    "Clip": "Clip(h, lo, hi)", "Clip-min-only": "Clip(h, lo)", "Identity": "Identity(h)",
    "Dropout": "Dropout(h)", "Gelu": "Gelu(h)", "Round": "Round(h)",
}


def _model(expression: str, extra: dict | None = None, opset: int = 17):
    """x -> strided Conv -> the operator under test -> Conv: the operator sits between two keyed layers."""
    inits = {"w": weights(6, 3, 3, 3), "b": weights(6), "w2": weights(4, 6, 3, 3, seed=7),
             "lo": np.array(-0.3, np.float32), "hi": np.array(0.5, np.float32)}
    inits.update(extra or {})
    expression = expression.replace("(h", "(c")
    body = f"""  c = Conv <pads=[1,1,1,1], strides=[2,2]> (x, w, b)
  h = {expression}
  y = Conv <pads=[1,1,1,1]> (h, w2)
"""
    return op_model(body, ["N", 3, 10, 12], inits, opset=opset)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation(key, name, policy):
    opset = {"Gelu": 20, "Mish": 18}.get(name, 17)
    options = KeyifyOptions(policy=policy, mean=(127.5,), std=(64.0,))  # keep Exp and friends finite
    keyed = assert_keyed_equals_plain(_model(ACTIVATIONS[name], opset=opset), key, options)
    if policy == "fresh":  # both convolutions became gathers; the activation runs on scrambled tokens
        assert [n.op_type for n in keyed.model.graph.node].count("Gather") == 2


@pytest.mark.parametrize("policy", POLICIES)
def test_batchnorm_not_after_a_conv(key, policy):
    """A BatchNormalization after a ReLU cannot fold into the conv: it becomes a per-channel scale and shift."""
    extra = {"s": weights(6, seed=3) + 1, "bb": weights(6, seed=4), "m": weights(6, seed=5),
             "v": np.abs(weights(6, seed=6)) + 0.5}
    body = """  c = Conv <pads=[1,1,1,1], strides=[2,2]> (x, w, b)
  r = Relu(c)
  h = BatchNormalization <epsilon=0.001> (r, s, bb, m, v)
  y = Conv <pads=[1,1,1,1]> (h, w2)
"""
    inits = {"w": weights(6, 3, 3, 3), "b": weights(6), "w2": weights(4, 6, 3, 3, seed=7), **extra}
    model = op_model(body, ["N", 3, 10, 12], inits)
    assert_keyed_equals_plain(model, key, KeyifyOptions(policy=policy))


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("slope_shape", [(6, 1, 1), (1,), (1, 6, 1, 1), (6, 5, 6)])
def test_prelu_per_channel_and_shared(key, policy, slope_shape):
    extra = {"slope": (np.arange(np.prod(slope_shape)).reshape(slope_shape) * 0.1).astype(np.float32)}
    assert_keyed_equals_plain(_model("PRelu(c, slope)", extra), key, KeyifyOptions(policy=policy))


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_over_channels_as_a_dense_output(key, policy, op):
    body = f"""  c = Conv <pads=[1,1,1,1]> (x, w, b)
  y = {op} <axis=1> (c)
"""
    model = op_model(body, ["N", 3, 7, 9], {"w": weights(5, 3, 3, 3), "b": weights(5)})
    keyed = assert_keyed_equals_plain(model, key, KeyifyOptions(policy=policy))
    if policy == "fresh":
        assert keyed.manifest.outputs[0].kind == "dense" and keyed.manifest.outputs[0].form == "nchw"


def test_softmax_over_a_spatial_axis_is_refused(key):
    from export.errors import UnsupportedModel
    from export.keyify import keyify

    body = """  c = Conv <pads=[1,1,1,1]> (x, w, b)
  y = Softmax <axis=3> (c)
"""
    model = op_model(body, ["N", 3, 7, 9], {"w": weights(5, 3, 3, 3), "b": weights(5)})
    with pytest.raises(UnsupportedModel, match=r"\(Softmax\): Softmax over axis 3"):
        keyify(model, key, KeyifyOptions(policy="fresh"))
