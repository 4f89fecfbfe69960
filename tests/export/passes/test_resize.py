"""Resize (nearest, linear, cubic; every coordinate mode) and ConvTranspose, for decoders."""

from __future__ import annotations

import numpy as np
import pytest

from export.keyify import KeyifyOptions
from tests.export.helpers import assert_keyed_equals_plain, op_model, weights

POLICIES = ["fresh", "boundary"]
SHAPE = ["N", 3, 6, 5]

RESIZES = {
    "nearest-x2": ('mode="nearest"', "scales", [1, 1, 2, 2]),
    "nearest-floor-asymmetric": ('mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"',
                                 "scales", [1, 1, 2, 3]),
    "nearest-sizes-axes": ('mode="nearest", nearest_mode="round_prefer_ceil", axes=[2,3]', "sizes", [13, 7]),
    "linear-half-pixel": ('mode="linear"', "scales", [1, 1, 2, 2]),
    "linear-align-corners": ('mode="linear", coordinate_transformation_mode="align_corners", axes=[2,3]', "sizes",
                             [11, 9]),
    "linear-scales-axes": ('mode="linear", axes=[3,2]', "scales", [3, 2]),
    "linear-pytorch-half-pixel": ('mode="linear", coordinate_transformation_mode="pytorch_half_pixel"', "scales",
                                  [1, 1, 1.5, 2]),
    "linear-downscale-antialias": ('mode="linear", antialias=1', "scales", [1, 1, 0.5, 0.6]),
    "cubic": ('mode="cubic", cubic_coeff_a=-0.5', "scales", [1, 1, 2, 2]),
}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("case", sorted(RESIZES))
def test_resize(key, policy, case):
    attributes, which, values = RESIZES[case]
    inputs = "a, , s" if which == "scales" else "a, , , s"
    s = np.array(values, np.float32 if which == "scales" else np.int64)
    body = f"""  a = Conv <pads=[1,1,1,1]> (x, w0)
  u = Resize <{attributes}> ({inputs})
  y = Conv <pads=[1,1,1,1]> (u, w1)
"""
    inits = {"w0": weights(4, 3, 3, 3), "w1": weights(2, 4, 3, 3, seed=2), "s": s}
    keyed = assert_keyed_equals_plain(op_model(body, SHAPE, inits, opset=18), key,
                                      KeyifyOptions(policy=policy, mean=(128.0,), std=(64.0,)))
    if policy == "fresh":
        assert "Resize" not in [n.op_type for n in keyed.model.graph.node]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("attributes, kernel", [
    ("strides=[2,2]", (2, 2)),
    ("strides=[2,2], pads=[1,1,1,1]", (3, 3)),
    ("strides=[2,2], pads=[1,1,1,1], output_padding=[1,1]", (3, 3)),
    ("strides=[3,2], pads=[0,1,2,0], dilations=[1,2]", (3, 3)),
    ("strides=[1,1], pads=[1,1,1,1]", (3, 3)),
    ('strides=[2,2], auto_pad="SAME_UPPER"', (3, 3)),
    ('strides=[2,2], auto_pad="SAME_LOWER"', (4, 4)),
    ("strides=[2,2], output_shape=[13,11]", (3, 3)),
])
def test_conv_transpose(key, policy, attributes, kernel):
    body = f"""  a = Conv <pads=[1,1,1,1]> (x, w0)
  u = ConvTranspose <{attributes}> (a, wt, bt)
  y = Relu(u)
"""
    inits = {"w0": weights(4, 3, 3, 3), "wt": weights(4, 5, *kernel, seed=3), "bt": weights(5, seed=4)}
    keyed = assert_keyed_equals_plain(op_model(body, SHAPE, inits), key, KeyifyOptions(policy=policy))
    if policy == "fresh":
        assert "ConvTranspose" not in [n.op_type for n in keyed.model.graph.node]
