"""Conformance: an SSD-style anchor head (BlazeFace's layout, ``export.zoo.ssd_head``), keyed, both policies, fixed
and dynamic batch, on real photographs.

Its outputs are regressors (N, 896, 16) and scores (N, 896, 1) over anchors that the decoder generates
(``export.zoo.ssd_anchors``). Under ``fresh`` the anchor axis is scrambled: two segments, one per head, each in
its map's layout with 2 or 6 anchors per cell. ``edge.restore`` (the device's restore of dense outputs, segment
by segment: tests/export/helpers.py) puts it back in order, which gives the plain outputs to float tolerance;
decoded against the anchors and NMS'd, the detections are the plain model's. Without the restore they are not:
the anchors no longer line up.
"""

from __future__ import annotations

import numpy as np
import pytest

from export.keyify import KeyifyOptions, keyify
from export.zoo import ssd_anchors, ssd_head
from export.zoo.detectors import SIZE
from tests.export.detection import assert_same_detections, nms, photos, score_threshold
from tests.export.helpers import TOLERANCE, plain_input, relative_error, restore, scramble, session

POLICIES = ["fresh", "boundary"]
NORM = dict(mean=(127.5,), std=(127.5,))  # BlazeFace's input: [-1, 1]


def decode(regressors: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """One image's (896, 16) and (896, 1) in anchor order: NMS'd (x0, y0, x1, y1, score, class) in input pixels."""
    centres = ssd_anchors() * SIZE + regressors[:, :2]
    half = np.abs(regressors[:, 2:4]) / 2 + 4.0  # random weights: keep every box a few pixels wide
    boxes = np.concatenate([centres - half, centres + half], axis=1)
    scores = 1 / (1 + np.exp(-logits[:, 0]))
    return nms(boxes, scores, np.zeros(len(scores), np.int64), score_threshold(scores), 0.3)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("batch", [None, 1], ids=["dynamic", "fixed-1"])
def test_keyed_ssd_head_restored_is_the_plain_model(key, policy, batch):
    plain = ssd_head(batch)
    options = KeyifyOptions(policy=policy, **NORM)
    keyed = keyify(plain, key, options)
    count = batch or 3
    pictures = photos(SIZE, SIZE, count)
    want = session(plain, optimise=False).run(None, {"input": plain_input(pictures, **NORM)})
    got = session(keyed.model).run(None, {"measurement": scramble(pictures, key, options)})
    assert keyed.manifest.task == "detect" and keyed.manifest.labels == ["face"]
    assert keyed.manifest.batch == batch
    restored = []
    for spec, g, w in zip(keyed.manifest.outputs, got, want):
        assert spec.shape == [batch, 896, w.shape[2]] and g.shape == w.shape
        if policy == "fresh":
            assert spec.kind == "dense" and spec.form == "anchors" and spec.axis == 1
            assert [(s.length, s.group, s.layout.height) for s in spec.segments] == [(512, 2, 16), (384, 6, 8)]
        restored.append(restore(g, spec, key) if spec.kind == "dense" else g)
        assert relative_error(restored[-1], w) <= TOLERANCE
    for image in range(count):
        plain_found = decode(want[0][image], want[1][image])
        assert_same_detections(decode(restored[0][image], restored[1][image]), plain_found)
        if policy == "fresh":  # the keyed order, decoded against the anchors as they are: other boxes
            scrambled = decode(got[0][image], got[1][image])
            assert len(scrambled) != len(plain_found) or np.abs(scrambled[:, :4] - plain_found[:, :4]).max() > 1
