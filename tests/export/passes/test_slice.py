"""Split and Slice on channels (pointwise: YOLOv8's C2f blocks), both policies; slices of positions refused."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from export.errors import UnsupportedModel
from export.keyify import KeyifyOptions, keyify
from tests.export.helpers import assert_keyed_equals_plain, op_model, weights

POLICIES = ["fresh", "boundary"]
SHAPE = ["N", 3, 10, 8]


def _inits(**more):
    inits = {"w0": weights(6, 3, 3, 3, seed=1), "w1": weights(2, 2, 3, 3, seed=2, scale=0.3),
             "w2": weights(4, 8, 3, 3, seed=3, scale=0.3), "sizes": np.array([2, 4], np.int64),
             "w3": weights(4, 3, 3, 3, seed=4)}
    inits.update(more)
    return inits


def _count(model: onnx.ModelProto, op: str) -> int:
    return sum(node.op_type == op for node in model.graph.node)


@pytest.mark.parametrize("policy", POLICIES)
def test_split_on_channels_as_a_c2f_block_writes_it(key, policy):
    """conv -> Split [2, 4] -> a conv on the first part -> Concat of every part -> conv (ultralytics' C2f)."""
    body = """  a = Conv <pads=[1,1,1,1], strides=[2,2]> (x, w0)
  p, q = Split <axis=1> (a, sizes)
  r = Conv <pads=[1,1,1,1]> (p, w1)
  s = Add(r, p)
  c = Concat <axis=1> (p, q, s)
  y = Conv <pads=[1,1,1,1]> (c, w2)
"""
    keyed = assert_keyed_equals_plain(op_model(body, SHAPE, _inits()), key, KeyifyOptions(policy=policy))
    assert _count(keyed.model, "Split") == 1
    assert keyed.manifest.outputs[0].kind == ("dense" if policy == "fresh" else "plain")


@pytest.mark.parametrize("policy", POLICIES)
def test_split_into_equal_parts_by_its_output_count(key, policy):
    """Opset 18's Split with num_outputs and no sizes (what torch.export writes for chunk)."""
    body = """  a = Conv <pads=[1,1,1,1]> (x, w0)
  p, q, r = Split <axis=-3, num_outputs=3> (a)
  m = Mul(p, q)
  y = Sub(m, r)
"""
    assert_keyed_equals_plain(op_model(body, SHAPE, _inits(), opset=18), key, KeyifyOptions(policy=policy))


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cut", [
    "Slice(a, one, five, axis1)",  # channels 1..4
    "Slice(a, five, minus_big, axis1, minus_one)",  # channels 5..1, backwards
    "Slice(a, zeros2, fours, axes12, twos)",  # channels 0, 2 and every row (whole)
    "Slice(a, zeros4, bigs4)",  # every axis whole: nothing to do
])
def test_slice_of_channels(key, policy, cut):
    body = f"""  a = Conv <pads=[1,1,1,1]> (x, w0)
  s = {cut}
  y = Relu(s)
"""
    inits = _inits(one=np.array([1], np.int64), five=np.array([5], np.int64), axis1=np.array([1], np.int64),
                   minus_big=np.array([-100], np.int64), minus_one=np.array([-1], np.int64),
                   zeros2=np.zeros(2, np.int64), fours=np.array([4, 2**62], np.int64),
                   axes12=np.array([1, 2], np.int64), twos=np.array([2, 1], np.int64), zeros4=np.zeros(4, np.int64),
                   bigs4=np.full(4, 2**62, np.int64))
    assert_keyed_equals_plain(op_model(body, SHAPE, inits), key, KeyifyOptions(policy=policy))


@pytest.mark.parametrize("body, message", [
    ("  a = Conv <pads=[1,1,1,1]> (x, w0)\n  p, q = Split <axis=2> (a, halves)\n  y = Add(p, q)\n",
     r"node 'p' \(Split\): Split of a feature map on axis 2; only channels"),
    ("  a = Conv <pads=[1,1,1,1]> (x, w0)\n  y = Slice(a, one, five, axis2)\n",
     r"node 'y' \(Slice\): Slice of positions \(axis 2, 1:5:1\) of a feature map"),
])
def test_slices_of_positions_are_refused_under_fresh(key, body, message):
    inits = _inits(halves=np.array([5, 5], np.int64), one=np.array([1], np.int64), five=np.array([5], np.int64),
                   axis2=np.array([2], np.int64))
    plain = op_model(body, SHAPE, inits)
    assert_keyed_equals_plain(plain, key, KeyifyOptions(policy="boundary"))
    with pytest.raises(UnsupportedModel, match=message):
        keyify(plain, key, KeyifyOptions(policy="fresh"))
