"""What `keycam verify` calls the same (edge.lab.compare, edge.lab.detections): detections as sets, flips at a
threshold reported and not counted, everything else a difference with its size; top-k rows as sets."""

from __future__ import annotations

import numpy as np

from edge.lab.compare import TOLERANCES, Context, compare_answers, describe, rows_as_set
from edge.lab.verify import OutputCheck


def _detection(box, score, label=0, **extra):
    return {"box": list(box), "score": score, "label": label, "class": str(label)} | extra


def _answer(*found):
    counts = {}
    for item in found:
        counts[item["class"]] = counts.get(item["class"], 0) + 1
    return {"detections": list(found), "counts": counts}


def _compare(plain, keyed, **context):
    checks = {}
    compare_answers(plain, keyed, Context(0.11, (1.0, 1.0), **({"score_threshold": 0.5, "iou_threshold": 0.45,
                                                                 "max_detections": 100} | context)), checks)
    return checks


def test_detections_in_another_order_are_the_same_set():
    a, b = _detection((0, 0, 10, 10), 0.9), _detection((20, 20, 40, 40), 0.8, 1)
    moved = _detection((0.004, 0, 10, 10.01), 0.9000004)
    checks = _compare(_answer(a, b), _answer(b, moved))
    assert all(check.ok for check in checks.values())
    column, text = describe(checks["detections"])
    assert column == "detections" and text.startswith("2 of 2 matched by class and box, as sets")
    assert text.endswith(": ok") and "coordinates within 0.01 px" in text


def test_a_detection_at_the_score_threshold_is_a_flip_reported_and_the_counts_follow_it():
    a, edge = _detection((0, 0, 10, 10), 0.9), _detection((50, 50, 60, 60), 0.50004, 2)
    checks = _compare(_answer(a, edge), _answer(a))
    assert checks["detections"].ok and checks["counts"].ok
    assert checks["detections"].flips == {"near the score threshold": 1}
    assert "in one answer only, not counted: 1 near the score threshold" in describe(checks["detections"])[1]


def test_a_detection_in_one_answer_only_far_from_every_threshold_is_a_difference():
    a, lone = _detection((0, 0, 10, 10), 0.9), _detection((50, 50, 60, 60), 0.7, 3)
    checks = _compare(_answer(a), _answer(a, lone))
    detections = checks["detections"]
    assert not detections.ok and not checks["counts"].ok
    column, text = describe(detections)
    assert "NOT EXACT: 1 difference, first: a detection of class 3 (score 0.7, box [50.0, 50.0, 60.0, 60.0]) " \
           "only in the keyed model's answer" in text


def test_a_box_suppressed_by_a_hair_and_what_it_would_have_suppressed():
    """In the plain answer B overlaps A at IoU just above 0.45 and is suppressed; in the keyed one just below and is
    kept, and suppresses C, which the plain answer keeps."""
    a = _detection((0, 0, 100, 100), 0.9)
    b = _detection((0, 37.93, 100, 137.93), 0.8)  # IoU with A: 62.07 / 137.93 = 0.45001
    c = _detection((0, 60, 100, 160), 0.7)  # IoU with B 0.64, with A 0.25
    iou = 62.07 / 137.93
    assert abs(iou - 0.45) < 1e-3
    checks = _compare(_answer(a, c), _answer(a, b))
    detections = checks["detections"]
    assert detections.ok, detections.first_problem
    assert detections.flips == {"an overlap at the NMS threshold": 1, "suppressed by a flipped detection": 1}


def test_a_near_tied_class_and_a_wrong_score():
    a = _detection((0, 0, 10, 10), 0.6, 1)
    checks = _compare(_answer(a), _answer(_detection((0, 0, 10, 10), 0.60002, 2)))
    assert checks["detections"].ok and checks["detections"].flips == {"a near-tied class": 2}
    checks = _compare(_answer(a), _answer(_detection((0, 0, 10, 10), 0.61, 1)))
    assert not checks["detections"].ok and "score: 0.61 in the keyed model's answer, 0.6 in the plain" in \
        checks["detections"].first_problem


def test_keypoints_visibility_is_a_score_and_a_mask_may_differ_by_pixels_at_its_threshold():
    square = [[10.5, 10.5], [10.5, 29.5], [29.5, 29.5], [29.5, 10.5]]
    notched = [[10.5, 10.5], [10.5, 29.5], [28.5, 29.5], [29.5, 28.5], [29.5, 10.5]]  # one corner pixel flipped
    mask = {"pixels": 400.0, "polygons": [square]}
    plain = _detection((10, 10, 30, 30), 0.9, keypoints=[[12.0, 13.0, 0.9]], mask=mask)
    keyed = _detection((10, 10, 30, 30), 0.9, keypoints=[[12.0, 13.0, 0.90001]],
                       mask={"pixels": 399.0, "polygons": [notched]})
    checks = _compare(_answer(plain), _answer(keyed))
    assert checks["detections"].ok, checks["detections"].first_problem
    assert checks["detections"].flips["mask pixels at the threshold"] >= 1
    shrunk = {"pixels": 300.0, "polygons": [[[10.5, 10.5], [10.5, 24.5], [29.5, 24.5], [29.5, 10.5]]]}
    checks = _compare(_answer(plain), _answer(keyed | {"mask": shrunk}))
    assert not checks["detections"].ok


def test_a_classifier_line_and_other_values():
    checks = _compare({"logits": {"label": 3, "score": 0.4}}, {"logits": {"label": 3, "score": 0.40003}})
    assert describe(checks["logits"]) == ("top-1 agree", "100.00 % (logits: 1 of 1 frames; scores within 3e-05): ok")
    checks = _compare({"logits": {"label": 3, "score": 0.4}}, {"logits": {"label": 5, "score": 0.4}})
    assert describe(checks["logits"])[1].startswith("0.00 % (") and "logits.label: 5 in the keyed" in \
        describe(checks["logits"])[1]
    checks = _compare({"output0": {"shape": [1, 8], "mean": 2.0}}, {"output0": {"shape": [1, 8], "mean": 2.1}})
    assert not checks["output0"].ok and "tolerance" in checks["output0"].first_problem


def test_top_k_rows_in_another_order_are_the_same_set_and_a_changed_row_is_not():
    rng = np.random.default_rng(0)
    want = rng.random((1, 300, 6)).astype(np.float32)
    got = want.copy()
    got[0, [10, 11]] = got[0, [11, 10]]  # two near-tied rows swapped by the model's TopK
    assert rows_as_set(got[0], want[0], 1e-6) == (2, 0.0)
    check = OutputCheck("output0")
    check.add(got, want, "plain")
    assert check.ok and check.moved == 2 and "2 rows in another order" in check.line()[1]
    got[0, 5, 0] += 0.01
    assert rows_as_set(got[0], want[0], 1e-4) is None
    check = OutputCheck("output0")
    check.add(got, want, "plain")
    assert not check.ok and check.line()[1].endswith(": NOT EXACT")
    anchors = OutputCheck("output0")  # (N, 84, anchors): rows are channels, never a set
    swapped = want.transpose(0, 2, 1).copy()
    anchors.add(swapped[:, ::-1], swapped, "plain")
    assert not anchors.ok and anchors.moved == 0
    assert TOLERANCES.raw == 1e-4
