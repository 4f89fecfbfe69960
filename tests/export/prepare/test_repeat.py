"""Nearest up-sampling written as data movement (export/prepare/repeat.py): Keras 3's UpSampling2D as tf2onnx writes it
(Unsqueeze, Tile, Reshape with run-time shapes) and PyTorch's expand-and-reshape become one Resize; a chain that
moves data some other way (tiling the whole image) is left alone and refused under fresh, naming the node."""

from __future__ import annotations

import numpy as np
import pytest

from export.errors import UnsupportedModel
from export.keyify import KeyifyOptions, keyify
from export.prepare.graph import prepare
from tests.export.helpers import assert_keyed_equals_plain, op_model, weights

POLICIES = ["fresh", "boundary"]
SHAPE = ["N", 3, 8, 6]
HEAD = "  c = Conv <pads=[1,1,1,1]> (x, w0)\n  r = Relu(c)\n"
TAIL = "  y = Conv <pads=[1,1,1,1]> (u, w1)\n"

# Keras 3 repeats rows then columns; each Reshape's shape comes from Shape at run time (batch, C, then sizes)
KERAS3 = """  e1 = Unsqueeze(r, three)
  t1 = Tile(e1, reps_h)
  s1 = Shape(r)
  b1 = Slice(s1, zero, two)
  k1 = Concat <axis=0> (b1, size_h)
  h = Reshape(t1, k1)
  e2 = Unsqueeze(h, four)
  t2 = Tile(e2, reps_w)
  s2 = Shape(h)
  b2 = Slice(s2, zero, three)
  k2 = Concat <axis=0> (b2, size_w)
  u = Reshape(t2, k2)
"""
TORCH = """  v = Reshape(r, six)
  x2 = Expand(v, grow)
  u = Reshape(x2, flat)
"""


def _inits(**more) -> dict:
    inits = {"w0": weights(4, 3, 3, 3, seed=1, scale=0.3), "w1": weights(2, 4, 3, 3, seed=2, scale=0.3),
             "zero": np.array([0], np.int64), "two": np.array([2], np.int64), "three": np.array([3], np.int64),
             "four": np.array([4], np.int64)}
    inits.update(more)
    return inits


CASES = {
    "keras3": (KERAS3, dict(reps_h=np.array([1, 1, 1, 2, 1], np.int64), size_h=np.array([16, 6], np.int64),
                            reps_w=np.array([1, 1, 1, 1, 2], np.int64), size_w=np.array([12], np.int64)), (2, 2)),
    "torch-2x3": (TORCH, dict(six=np.array([-1, 4, 8, 1, 6, 1], np.int64),  # (N, C, H, 1, W, 1)
                              grow=np.array([1, 4, 8, 2, 6, 3], np.int64),  # -> (N, C, H, 2, W, 3)
                              flat=np.array([-1, 4, 16, 18], np.int64)), (2, 3)),  # -> (N, C, 2H, 3W)
}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_data_movement_up_sampling_becomes_a_resize(key, policy, case):
    text, constants, scale = CASES[case]
    plain = op_model(HEAD + text + TAIL, SHAPE, _inits(**constants), opset=13)
    graph = prepare(plain)
    ops = [n.op_type for n in graph.nodes]
    assert ops.count("Resize") == 1 and not {"Tile", "Expand", "Unsqueeze", "Reshape", "Shape"} & set(ops)
    resize = next(n for n in graph.nodes if n.op_type == "Resize")
    assert graph.constants[resize.input[2]].tolist() == [1, 1, *scale]
    assert_keyed_equals_plain(plain, key, KeyifyOptions(policy=policy), count=3)


@pytest.mark.parametrize("policy", POLICIES)
def test_up_sampling_of_the_input_itself(key, policy):
    text = TORCH.replace("(r, six)", "(x, six)")
    constants = dict(six=np.array([-1, 3, 8, 1, 6, 1], np.int64), grow=np.array([1, 3, 8, 2, 6, 2], np.int64),
                     flat=np.array([-1, 3, 16, 12], np.int64))
    plain = op_model(text + "  y = Conv <pads=[1,1,1,1]> (u, w)\n", SHAPE,
                     _inits(w=weights(2, 3, 3, 3, seed=3), **constants), opset=13)
    assert [n.op_type for n in prepare(plain).nodes] == ["Resize", "Conv"]
    assert_keyed_equals_plain(plain, key, KeyifyOptions(policy=policy, mean=(100.0,) * 3, std=(50.0,) * 3))


def test_tiling_the_whole_image_is_not_an_up_sampling(key):
    """(N, C, 1, H, W) tiled twice on the new axis stacks the image on itself: left alone, refused under fresh."""
    text = "  e = Unsqueeze(r, two)\n  t = Tile(e, reps)\n  u = Reshape(t, size)\n"
    plain = op_model(HEAD + text + TAIL, SHAPE, _inits(reps=np.array([1, 1, 2, 1, 1], np.int64),
                                                       size=np.array([-1, 4, 16, 6], np.int64)), opset=13)
    assert "Resize" not in {n.op_type for n in prepare(plain).nodes}
    assert_keyed_equals_plain(plain, key, KeyifyOptions(policy="boundary"))
    with pytest.raises(UnsupportedModel, match=r"node 'e' \(Unsqueeze\): Unsqueeze on a feature map is not supported"):
        keyify(plain, key, KeyifyOptions(policy="fresh"))
