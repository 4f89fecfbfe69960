"""Element-wise operators between maps (layout constraints solved), with constants, SE gates, Concat."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from export.keyify import KeyifyOptions
from tests.export.helpers import assert_keyed_equals_plain, op_model, weights

POLICIES = ["fresh", "boundary"]
SHAPE = ["N", 3, 10, 8]


def _inits(**more):
    inits = {"w0": weights(6, 3, 3, 3, seed=1), "w1": weights(6, 6, 3, 3, seed=2, scale=0.2),
             "w2": weights(6, 6, 3, 3, seed=3, scale=0.2), "w3": weights(4, 6, 3, 3, seed=4)}
    inits.update(more)
    return inits


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean"])
def test_residual_block_solves_the_layout_constraint(key, policy, op):
    """x -> a; a -> conv -> conv -> b; op(a, b): the second conv must emit a's layout."""
    body = f"""  a = Conv <pads=[1,1,1,1], strides=[2,2]> (x, w0)
  r = Relu(a)
  c1 = Conv <pads=[1,1,1,1]> (r, w1)
  h = Relu(c1)
  b = Conv <pads=[1,1,1,1]> (h, w2)
  s = {op}({'r, b' if op != 'Div' else 'r, d'})
  y = Conv <pads=[1,1,1,1], strides=[2,2]> (s, w3)
"""
    if op == "Div":
        body = body.replace("  s = Div(r, d)", "  e = Abs(b)\n  d = Add(e, one)\n  s = Div(r, d)")
    model = op_model(body, SHAPE, _inits(one=np.array(1.0, np.float32)))
    keyed = assert_keyed_equals_plain(model, key, KeyifyOptions(policy=policy, mean=(128.0,), std=(64.0,)))
    if policy == "fresh":
        assert [n.op_type for n in keyed.model.graph.node].count("Gather") == 4


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("constant", ["scalar", "per-channel", "per-channel-3d", "full-map"])
def test_constants_broadcast_against_maps(key, policy, constant):
    shapes = {"scalar": (), "per-channel": (1, 6, 1, 1), "per-channel-3d": (6, 1, 1), "full-map": (1, 6, 5, 4)}
    k = weights(*shapes[constant], seed=8) if shapes[constant] else np.array(0.75, np.float32)
    body = """  a = Conv <pads=[1,1,1,1], strides=[2,2]> (x, w0)
  m = Mul(a, k)
  s = Add(k, m)
  y = Conv <pads=[1,1,1,1]> (s, w3)
"""
    assert_keyed_equals_plain(op_model(body, SHAPE, _inits(k=k)), key, KeyifyOptions(policy=policy))


@pytest.mark.parametrize("policy", POLICIES)
def test_squeeze_excitation_gate(key, policy):
    """A 1x1 map (global pool -> 1x1 convs -> sigmoid) gates every position: broadcast, no constraint."""
    body = """  a = Conv <pads=[1,1,1,1]> (x, w0)
  g = GlobalAveragePool(a)
  f1 = Conv(g, se1, sb1)
  r = Relu(f1)
  f2 = Conv(r, se2, sb2)
  s = HardSigmoid(f2)
  m = Mul(a, s)
  y = Conv <pads=[1,1,1,1], strides=[2,2]> (m, w3)
"""
    inits = _inits(se1=weights(3, 6, 1, 1, seed=5), sb1=weights(3, seed=6), se2=weights(6, 3, 1, 1, seed=7),
                   sb2=weights(6, seed=9))
    assert_keyed_equals_plain(op_model(body, SHAPE, inits), key, KeyifyOptions(policy=policy))


@pytest.mark.parametrize("policy", POLICIES)
def test_concat_on_channels_of_two_branches(key, policy):
    body = """  a = Conv <pads=[1,1,1,1]> (x, w0)
  r = Relu(a)
  b1 = Conv <pads=[1,1,1,1]> (r, w1)
  b2 = MaxPool <kernel_shape=[3,3], pads=[1,1,1,1]> (r)
  c = Concat <axis=1> (b1, b2, r)
  y = Conv <pads=[1,1,1,1], strides=[2,2]> (c, w4)
"""
    inits = _inits(w4=weights(5, 18, 3, 3, seed=10))
    keyed = assert_keyed_equals_plain(op_model(body, SHAPE, inits), key, KeyifyOptions(policy=policy))
    if policy == "fresh":  # b1, b2 and r must share r's layout: both branches emit it; one channel concat
        channel_concats = [n for n in keyed.model.graph.node if n.op_type == "Concat"
                           and onnx.helper.get_attribute_value(n.attribute[0]) == -1]
        assert len(channel_concats) == 1


def test_concat_on_a_spatial_axis_is_refused(key):
    from export.errors import UnsupportedModel
    from export.keyify import keyify

    body = """  a = Conv <pads=[1,1,1,1]> (x, w0)
  y = Concat <axis=2> (a, a)
"""
    with pytest.raises(UnsupportedModel, match=r"Concat of feature maps on axis 2"):
        keyify(op_model(body, SHAPE, _inits()), key, KeyifyOptions(policy="fresh"))
