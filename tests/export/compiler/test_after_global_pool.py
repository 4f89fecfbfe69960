"""A 1 x 1 map (after global pooling) has no positions to hide: operators without a pass (tf2onnx's Squeeze after
GlobalAveragePool, Unsqueeze, a Slice of channels) and reshapes read it as the plain (N, C, 1, 1) tensor; reshaped
to (N, C, 1, 1) it stays a 1x1 map; a computed (N, C, 1, 1) gate multiplies a map. On a larger map they are still
refused."""

from __future__ import annotations

import numpy as np
import pytest

from export.errors import UnsupportedModel
from export.keyify import KeyifyOptions, keyify
from tests.export.helpers import assert_keyed_equals_plain, op_model, weights

POLICIES = ["fresh", "boundary"]
SHAPE = ["N", 3, 8, 6]
HEADS = {
    "squeeze": "  v = Squeeze(g, hw)\n  y = MatMul(v, fc)\n",  # tf2onnx's GlobalAveragePooling2D + Dense
    "squeeze-unsqueeze-conv": "  v = Squeeze(g, hw)\n  u = Unsqueeze(v, hw)\n  y = Conv(u, w1)\n",
    "slice-of-channels": "  s = Slice(g, start, end, one)\n  v = Flatten(s)\n  y = MatMul(v, fc2)\n",
    "reshape-channels-last": "  y = Reshape(g, nhwc)\n",  # (N, 1, 1, C): read from the plain tensor
    # squeeze-and-excitation as tf2onnx writes Keras' (a 1x1 map reshaped), gating the map: a dense output
    "gate-reshaped-map": "  q = Reshape(g, nchw)\n  e = Conv(q, w2)\n  a = Sigmoid(e)\n  m = Mul(r, a)\n"
                         "  y = Conv <pads=[1,1,1,1]> (m, w3)\n",
    # EfficientNet's: a vector reshaped to (N, C, 1, 1) gates the map (a computed tensor, not a 1x1 map)
    "gate-from-a-vector": "  v = Flatten(g)\n  d = MatMul(v, fc3)\n  a = Sigmoid(d)\n  q = Reshape(a, nchw)\n"
                          "  m = Mul(q, r)\n  y = Conv <pads=[1,1,1,1]> (m, w3)\n",
}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("head", sorted(HEADS))
def test_operators_on_a_pooled_vector(key, policy, head):
    body = "  c = Conv <pads=[1,1,1,1]> (x, w0)\n  r = Relu(c)\n  g = GlobalAveragePool(r)\n" + HEADS[head]
    inits = {"w0": weights(6, 3, 3, 3, seed=1, scale=0.2), "fc": weights(6, 4, seed=2), "fc2": weights(4, 4, seed=3),
             "w1": weights(5, 6, 1, 1, seed=4), "hw": np.array([2, 3], np.int64), "start": np.array([1], np.int64),
             "end": np.array([5], np.int64), "one": np.array([1], np.int64), "w2": weights(6, 6, 1, 1, seed=5),
             "w3": weights(2, 6, 3, 3, seed=6), "fc3": weights(6, 6, seed=7), "nchw": np.array([-1, 6, 1, 1], np.int64),
             "nhwc": np.array([-1, 1, 1, 6], np.int64)}
    keyed = assert_keyed_equals_plain(op_model(body, SHAPE, inits), key, KeyifyOptions(policy=policy), count=3)
    assert keyed.manifest.outputs[0].kind == ("dense" if head.startswith("gate") and policy == "fresh" else "plain")


def test_squeeze_of_a_map_is_refused(key):
    """A (N, C, 1, W) map still has W positions in a layout: squeezing it is refused under fresh."""
    body = "  c = Conv (x, w0)\n  y = Squeeze(c, h)\n"  # (N, 3, 8, 6) -> (N, 6, 1, 6) -> (N, 6, 6)
    plain = op_model(body, SHAPE, {"w0": weights(6, 3, 8, 1, seed=1), "h": np.array([2], np.int64)})
    assert_keyed_equals_plain(plain, key, KeyifyOptions(policy="boundary"))
    with pytest.raises(UnsupportedModel, match=r"node 'y' \(Squeeze\): Squeeze on a feature map is not supported"):
        keyify(plain, key, KeyifyOptions(policy="fresh"))


def test_a_vector_that_is_not_a_gate_cannot_meet_a_map(key):
    """The pooled channels reshaped to (N, 1, C, 1) vary over rows, not channels: refused under fresh."""
    body = "  c = Conv <pads=[1,1,1,1]> (x, w0)\n  g = GlobalAveragePool(c)\n  v = Reshape(g, rows)\n" \
           "  y = Mul(c, v)\n"
    plain = op_model(body, ["N", 3, 6, 6], {"w0": weights(6, 3, 3, 3, seed=1),
                                            "rows": np.array([-1, 1, 6, 1], np.int64)})
    assert_keyed_equals_plain(plain, key, KeyifyOptions(policy="boundary"))
    with pytest.raises(UnsupportedModel, match=r"node 'y' \(Mul\): operand 'v' \(Same\) cannot meet a feature map"):
        keyify(plain, key, KeyifyOptions(policy="fresh"))
