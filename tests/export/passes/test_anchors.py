"""Anchor lists: detection heads as exporters write them, keyed under both policies; the order a key holder restores.

A YOLO-style head over two scales (Reshape to (N, C, H*W), Concat along the anchors, the distribution focal
loss: Reshape, Transpose, Softmax over the bins, a 1x1 Conv or a MatMul; the in-graph decode with a per-anchor
grid and strides), an SSD-style head (channels-last, Reshape to (N, H*W*A, K), Concat of the scales), each
with a dynamic and a fixed batch; and the reshapes, slices and reductions that would mix anchors, refused.
"""

from __future__ import annotations

import numpy as np
import pytest

from export.errors import UnsupportedModel
from export.keyify import KeyifyOptions, keyify
from tests.export.helpers import assert_keyed_equals_plain, op_model, weights

POLICIES = ["fresh", "boundary"]
BINS = 4
CLASSES = 3
ANCHORS = 8 * 8 + 4 * 4  # two scales of a 16 x 16 input: strides 2 and 4


def _grid() -> tuple[np.ndarray, np.ndarray]:
    """YOLO's anchor points (1, 2, A) (cell centres) and strides (1, A), scale by scale."""
    points, strides = [], []
    for size, stride in ((8, 2), (4, 4)):
        ys, xs = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()]))
        strides.append(np.full(size * size, stride))
    return (np.concatenate(points, 1)[None].astype(np.float32), np.concatenate(strides)[None].astype(np.float32))


def _inits(batch: int, **more) -> dict:
    n = batch or -1
    m = batch or 0  # with a -1 already there, a dynamic export copies the batch (0)
    grid, strides = _grid()
    inits = {
        "w0": weights(6, 3, 3, 3, seed=1), "w1": weights(6, 6, 3, 3, seed=2, scale=0.3),
        "wba": weights(4 * BINS, 6, 1, 1, seed=3), "wca": weights(CLASSES, 6, 3, 3, seed=4),
        "wbb": weights(4 * BINS, 6, 1, 1, seed=5), "wcb": weights(CLASSES, 6, 3, 3, seed=6),
        "boxes": np.array([m, 4 * BINS, -1], np.int64), "scores": np.array([m, CLASSES, -1], np.int64),
        "bins": np.array([n, 4, BINS, ANCHORS], np.int64), "sides": np.array([n, 4, ANCHORS], np.int64),
        "dfl": np.arange(BINS, dtype=np.float32).reshape(1, BINS, 1, 1), "arange": np.arange(BINS, dtype=np.float32),
        "grid": grid, "strides": strides, "two": np.array(2.0, np.float32),
        "s0": np.array([0], np.int64), "s2": np.array([2], np.int64), "s4": np.array([4], np.int64),
        "one": np.array([1], np.int64),
    }
    inits.update(more)
    return inits


TRUNK = """  a = Conv <pads=[1,1,1,1], strides=[2,2]> (x, w0)
  b = Conv <pads=[1,1,1,1], strides=[2,2]> (a, w1)
  ba = Conv (a, wba)
  ca = Conv <pads=[1,1,1,1]> (a, wca)
  bb = Conv (b, wbb)
  cb = Conv <pads=[1,1,1,1]> (b, wcb)
  ra = Reshape(ba, boxes)
  rb = Reshape(bb, boxes)
  ka = Reshape(ca, scores)
  kb = Reshape(cb, scores)
  box = Concat <axis=-1> (ra, rb)
  cls = Concat <axis=2> (ka, kb)
"""
DFL = {  # (N, 4*BINS, A) -> (N, 4, A): the expected distance per side
    "conv": """  d = Reshape(box, bins)
  t = Transpose <perm=[0,2,1,3]> (d)
  p = Softmax <axis=1> (t)
  e = Conv (p, dfl)
  dist = Reshape(e, sides)
""",
    "matmul": """  d = Reshape(box, bins)
  t = Transpose <perm=[0,1,3,2]> (d)
  p = Softmax <axis=-1> (t)
  dist = MatMul(p, arange)
""",
}
DECODE = """  lt = Slice(dist, s0, s2, one)
  rb2 = Slice(dist, s2, s4, one)
  x1y1 = Sub(grid, lt)
  x2y2 = Add(grid, rb2)
  sum = Add(x1y1, x2y2)
  xy = Div(sum, two)
  wh = Sub(x2y2, x1y1)
  xywh = Concat <axis=1> (xy, wh)
  pixels = Mul(xywh, strides)
  probs = Sigmoid(cls)
  y = Concat <axis=1> (pixels, probs)
"""


def _yolo(batch: int, dfl: str = "conv"):
    return op_model(TRUNK + DFL[dfl] + DECODE, [batch or "N", 3, 16, 16], _inits(batch))


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("batch", [0, 1, 2], ids=["dynamic", "fixed-1", "fixed-2"])
@pytest.mark.parametrize("dfl", sorted(DFL))
def test_yolo_style_head_with_its_box_decode(key, policy, batch, dfl):
    """Boxes in input pixels and class probabilities, (N, 4 + classes, anchors) over two scales."""
    keyed = assert_keyed_equals_plain(_yolo(batch, dfl), key, KeyifyOptions(policy=policy))
    out = keyed.manifest.outputs[0]
    assert keyed.manifest.batch == (batch or None) and keyed.manifest.input.shape[0] == (batch or None)
    assert out.shape == [batch or None, 4 + CLASSES, ANCHORS]
    if policy == "fresh":
        assert out.kind == "dense" and out.form == "anchors" and out.axis == 2 and out.layout is None
        assert [(s.length, s.group, s.layout.height, s.layout.width) for s in out.segments] == [(64, 1, 8, 8),
                                                                                                 (16, 1, 4, 4)]
        assert out.segments[0].layout.kind == "layer"
    else:
        assert out.kind == "plain"


@pytest.mark.parametrize("policy", POLICIES)
def test_a_computed_operand_that_varies_over_the_anchors_is_gathered_with_them(key, policy):
    """An offset per anchor computed at run time, from the batch size (not foldable): a Gather with the anchors."""
    body = TRUNK + """  s = Shape(x)
  n = Gather <axis=0> (s, zero)
  m = Mul(n, count)
  f = Cast <to=1> (m)
  r = Range(fzero, f, fone)
  o = Reshape(r, rows)
  y = Add(cls, o)
"""
    inits = _inits(0, zero=np.array(0, np.int64), count=np.array(ANCHORS, np.int64),
                   fzero=np.array(0.0, np.float32), fone=np.array(1.0, np.float32),
                   rows=np.array([-1, 1, ANCHORS], np.int64))
    keyed = assert_keyed_equals_plain(op_model(body, ["N", 3, 16, 16], inits), key, KeyifyOptions(policy=policy),
                                      count=3)
    if policy == "fresh":
        assert any(node.op_type == "Gather" and "anchor-operand" in node.output[0] for node in keyed.model.graph.node)


SSD = """  a = Conv <pads=[1,1,1,1], strides=[2,2]> (x, w0)
  b = Conv <pads=[1,1,1,1], strides=[2,2]> (a, w1)
  ra = Conv <pads=[1,1,1,1]> (a, wra)
  ca = Conv <pads=[1,1,1,1]> (a, wca)
  rb = Conv <pads=[1,1,1,1]> (b, wrb)
  cb = Conv <pads=[1,1,1,1]> (b, wcb)
  ta = Transpose <perm=[0,2,3,1]> (ra)
  tb = Transpose <perm=[0,2,3,1]> (rb)
  ua = Transpose <perm=[0,2,3,1]> (ca)
  ub = Transpose <perm=[0,2,3,1]> (cb)
  la = Reshape(ta, regress)
  lb = Reshape(tb, regress)
  ma = Reshape(ua, classify)
  mb = Reshape(ub, classify)
  regressors = Concat <axis=1> (la, lb)
  logits = Concat <axis=1> (ma, mb)
  classificators = Sigmoid(logits)
"""


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("batch", [0, 1], ids=["dynamic", "fixed-1"])
def test_ssd_style_head_over_two_scales(key, policy, batch):
    """Regressors (N, A, 4) and scores (N, A, 1): 2 anchors per cell at 8x8, 3 at 4x4; a fixed batch reshapes to
    (1, -1, K) as TFLite and BlazeFace exports do."""
    shapes = {"regress": [1, -1, 4], "regress_b": [1, -1, 4], "classify": [1, -1, 1], "classify_b": [1, -1, 1]}
    if not batch:  # a dynamic export writes each head's anchor count
        shapes = {"regress": [-1, 128, 4], "regress_b": [-1, 48, 4], "classify": [-1, 128, 1],
                  "classify_b": [-1, 48, 1]}
    inits = _inits(batch, wra=weights(2 * 4, 6, 3, 3, seed=7), wca=weights(2, 6, 3, 3, seed=8),
                   wrb=weights(3 * 4, 6, 3, 3, seed=9), wcb=weights(3, 6, 3, 3, seed=10),
                   **{name: np.array(shape, np.int64) for name, shape in shapes.items()})
    body = SSD.replace("lb = Reshape(tb, regress)", "lb = Reshape(tb, regress_b)").replace(
        "mb = Reshape(ub, classify)", "mb = Reshape(ub, classify_b)")
    plain = op_model(body, [batch or "N", 3, 16, 16], inits, outputs="regressors,classificators")
    keyed = assert_keyed_equals_plain(plain, key, KeyifyOptions(policy=policy))
    for out in keyed.manifest.outputs:
        assert out.shape[:2] == [batch or None, 128 + 48]
        if policy == "fresh":
            assert out.kind == "dense" and out.form == "anchors" and out.axis == 1
            assert [(s.length, s.group) for s in out.segments] == [(128, 2), (48, 3)]


@pytest.mark.parametrize("policy", POLICIES)
def test_an_activation_between_the_transpose_and_the_anchor_reshape(key, policy):
    body = SSD.split("  lb =")[0].replace("la = Reshape(ta, regress)", "sa = Sigmoid(ta)\n  y = Reshape(sa, regress)")
    inits = _inits(1, wra=weights(2 * 4, 6, 3, 3, seed=7), wca=weights(2, 6, 3, 3, seed=8),
                   wrb=weights(3 * 4, 6, 3, 3, seed=9), wcb=weights(3, 6, 3, 3, seed=10),
                   regress=np.array([1, -1, 4], np.int64))
    keyed = assert_keyed_equals_plain(op_model(body, [1, 3, 16, 16], inits), key, KeyifyOptions(policy=policy))
    assert keyed.manifest.outputs[0].kind == ("dense" if policy == "fresh" else "plain")


@pytest.mark.parametrize("policy", POLICIES)
def test_one_scale_ssd_head_keeps_the_manifest_form_it_had(key, policy):
    """One head on axis 1: ``layout`` and ``group``, no segments (manifests written before segments existed)."""
    body = SSD.split("  lb =")[0] + "  y = Sigmoid(la)\n"
    inits = _inits(1, wra=weights(2 * 4, 6, 3, 3, seed=7), wca=weights(2, 6, 3, 3, seed=8),
                   wrb=weights(3 * 4, 6, 3, 3, seed=9), wcb=weights(3, 6, 3, 3, seed=10),
                   regress=np.array([1, -1, 4], np.int64))
    keyed = assert_keyed_equals_plain(op_model(body, [1, 3, 16, 16], inits), key, KeyifyOptions(policy=policy))
    out = keyed.manifest.outputs[0]
    if policy == "fresh":
        assert out.segments is None and out.axis is None and out.group == 2 and out.layout.height == 8


REFUSED = {
    "softmax over the anchors": ("  y = Softmax <axis=2> (cls)\n",
                                 r"node 'y' \(Softmax\): Softmax along the anchor axis \(2\) mixes positions"),
    "reshape that moves the anchors": ("  y = Reshape(cls, swapped)\n",
                                       r"node 'y' \(Reshape\): reshape of an anchor list \(N, 3, 80\) \(anchors on "
                                       r"axis 2\) to \(N, 80, 3\) mixes its anchors"),
    "slice of anchors": ("  y = Slice(cls, s0, s4, two_axis)\n",
                         r"node 'y' \(Slice\): Slice of an anchor list along its anchors \(axis 2, 0:4:1\)"),
    "reduction over anchors": ("  y = ReduceMax <keepdims=0, axes=[2]> (cls)\n",
                               r"node 'y' \(ReduceMax\): ReduceMax on an anchor list \(a detection head's positions\) "
                               r"is not supported"),
    "top-k over anchors": ("  y, i = TopK <axis=2> (cls, one)\n", r"node 'y' \(TopK\): TopK on an anchor list"),
    "heads of different sizes combined per anchor": (
        "  c = Conv <strides=[4,1]> (x, w4)\n  kc = Reshape(c, scores)\n  y = Concat <axis=1> (ka, kc)\n",
        r"tensors of sizes \[\(4, 16\), \(8, 8\)\] must share a layout"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_operations_that_mix_anchors_are_refused_under_fresh(key, case):
    body, message = REFUSED[case]
    inits = _inits(0, swapped=np.array([-1, ANCHORS, CLASSES], np.int64), two_axis=np.array([2], np.int64),
                   w4=weights(CLASSES, 3, 1, 1, seed=11))
    plain = op_model(TRUNK + body, ["N", 3, 16, 16], inits)
    assert_keyed_equals_plain(plain, key, KeyifyOptions(policy="boundary"))
    with pytest.raises(UnsupportedModel, match=message):
        keyify(plain, key, KeyifyOptions(policy="fresh"))
