"""Flatten/Reshape/Transpose of maps larger than 1x1 into Gemm/MatMul (weights permuted), and dense heads."""

from __future__ import annotations

import numpy as np
import pytest

from export.errors import UnsupportedModel
from export.keyify import KeyifyOptions, keyify
from tests.export.helpers import assert_keyed_equals_plain, op_model, weights

POLICIES = ["fresh", "boundary"]
SHAPE = ["N", 3, 8, 6]


def _inits(**more):
    inits = {"w0": weights(5, 3, 3, 3, seed=1, scale=0.1)}
    inits.update(more)
    return inits


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("head", [
    "f = Flatten(p)\n  y = Gemm(f, fc, fb)",
    "f = Flatten(p)\n  y = Gemm <transB=1> (f, fct, fb)",
    "f = Flatten(p)\n  y = MatMul(f, fc)",
    "f = Reshape(p, shape)\n  y = Gemm(f, fc, fb)",
    "t = Transpose <perm=[0,2,3,1]> (p)\n  f = Reshape(t, shape)\n  y = Gemm(f, fc, fb)",
    "f = Flatten(p)\n  r = Relu(f)\n  y = Gemm(r, fc, fb)",
    # any Transpose that keeps the batch first, before the flatten: the weight rows follow its order
    "t = Transpose <perm=[0,3,2,1]> (p)\n  f = Reshape(t, shape)\n  y = Gemm(f, fc, fb)",
    "t = Transpose <perm=[0,1,3,2]> (p)\n  f = Flatten(t)\n  y = Gemm <transB=1> (f, fct, fb)",
    "t = Transpose <perm=[0,3,1,2]> (p)\n  f = Flatten(t)\n  y = MatMul(f, fc)",
    "t = Transpose <perm=[0,2,1,3]> (p)\n  f = Reshape(t, shape)\n  y = MatMul(f, fc)",
])
def test_flatten_of_a_map_into_a_dense_layer(key, policy, head):
    features = 5 * 4 * 3
    fc = weights(features, 7, seed=2, scale=0.05)
    body = f"""  a = Conv <pads=[1,1,1,1]> (x, w0)
  p = MaxPool <kernel_shape=[2,2], strides=[2,2]> (a)
  {head}
"""
    inits = _inits(fc=fc, fct=np.ascontiguousarray(fc.T), fb=weights(7, seed=3),
                   shape=np.array([-1, features], np.int64))
    keyed = assert_keyed_equals_plain(op_model(body, SHAPE, inits), key, KeyifyOptions(policy=policy))
    assert keyed.manifest.outputs[0].kind == "plain"


def test_flatten_via_shape_arithmetic_as_exporters_write_it(key):
    """x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat -> Reshape, with a dynamic batch."""
    features = 5 * 4 * 3
    body = """  a = Conv <pads=[1,1,1,1]> (x, w0)
  p = MaxPool <kernel_shape=[2,2], strides=[2,2]> (a)
  s = Shape(p)
  n = Gather <axis=0> (s, zero)
  u = Unsqueeze(n, axes)
  t = Concat <axis=0> (u, minus)
  f = Reshape(p, t)
  y = Gemm(f, fc, fb)
"""
    inits = _inits(zero=np.array(0, np.int64), axes=np.array([0], np.int64), minus=np.array([-1], np.int64),
                   fc=weights(features, 4, seed=2, scale=0.05), fb=weights(4, seed=3))
    for policy in POLICIES:
        assert_keyed_equals_plain(op_model(body, SHAPE, inits), key, KeyifyOptions(policy=policy), count=3)


@pytest.mark.parametrize("policy", POLICIES)
def test_detection_head_anchor_list_is_a_dense_output(key, policy):
    """(N, A*K, H, W) -> Transpose -> Reshape (N, H*W*A, K): the anchors follow the layout."""
    body = """  a = Conv <pads=[1,1,1,1]> (x, w0)
  h = Conv <pads=[1,1,1,1]> (a, wh)
  t = Transpose <perm=[0,2,3,1]> (h)
  r = Reshape(t, shape)
  y = Sigmoid(r)
"""
    inits = _inits(wh=weights(3 * 4, 5, 3, 3, seed=4), shape=np.array([-1, 8 * 6 * 3, 4], np.int64))
    keyed = assert_keyed_equals_plain(op_model(body, SHAPE, inits), key, KeyifyOptions(policy=policy))
    if policy == "fresh":
        out = keyed.manifest.outputs[0]
        assert out.kind == "dense" and out.form == "anchors" and out.group == 3


@pytest.mark.parametrize("policy", POLICIES)
def test_flattened_map_as_output_is_dense(key, policy):
    body = """  a = Conv <pads=[1,1,1,1], strides=[2,2]> (x, w0)
  y = Flatten(a)
"""
    keyed = assert_keyed_equals_plain(op_model(body, SHAPE, _inits()), key, KeyifyOptions(policy=policy))
    assert keyed.manifest.outputs[0].kind == ("dense" if policy == "fresh" else "plain")


def test_transpose_other_than_channels_last_is_refused(key):
    body = """  a = Conv <pads=[1,1,1,1]> (x, w0)
  y = Transpose <perm=[0,1,3,2]> (a)
"""
    with pytest.raises(UnsupportedModel, match=r"\(Transpose\): Transpose \[0, 1, 3, 2\]"):
        keyify(op_model(body, SHAPE, _inits()), key, KeyifyOptions(policy="fresh"))


def test_reshape_that_mixes_positions_is_refused(key):
    """(N, 5, 8, 6) read as (N, 48, 5): each row mixes positions and channels. ((N, 5, 48), the positions last, is
    an anchor list: tests/export/passes/test_anchors.py.)"""
    body = """  a = Conv <pads=[1,1,1,1]> (x, w0)
  y = Reshape(a, shape)
"""
    inits = _inits(shape=np.array([-1, 48, 5], np.int64))
    with pytest.raises(UnsupportedModel, match=r"only flattening to \(N, C\*H\*W\)"):
        keyify(op_model(body, SHAPE, inits), key, KeyifyOptions(policy="fresh"))
