"""A detector's detections compared as sets, for ``keycam verify`` (``edge.lab.compare`` says what "the same" is).

Detections (list items with a ``box``, or a ``score`` and a class) are matched one to one by class and box, nearest
first (boxes within the pixel tolerance; detections without a box by score); a matched pair's other fields
(score, keypoints, mask, corners, ...) are compared field by field. A detection found in one answer only is a
float's flip, reported but not counted, when one of these explains it (else it is a mismatch):

- its score lies within the score tolerance of the score threshold;
- the other answer has the same box with another class and a score within the tolerance (a near-tied class);
- the other answer holds a detection of its class, scored as high, whose overlap with it lies within ``iou_band``
  of the NMS threshold, or one that is itself an explained flip and overlaps it past the threshold (it would have
  suppressed it);
- the other answer is at ``max_detections`` and it scores no higher than the other answer's lowest.
"""

from __future__ import annotations

import numpy as np

from edge.lab.compare import Context, KindCheck, compare_value


def _class(item: dict):
    return item.get("label", item.get("class"))


def _box(item: dict) -> np.ndarray:
    return np.asarray(item.get("box", []), np.float64).reshape(-1)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Overlap of two (x0, y0, x1, y1) boxes (0 for boxes of another form)."""
    if len(a) != 4 or len(b) != 4:
        return 0.0
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union) if union > 0 else 0.0


def _match(plain: list, keyed: list, context: Context) -> list[tuple[int, int]]:
    """One-to-one pairs (plain, keyed) of the same class whose boxes agree within the pixel tolerance (whose scores
    do, for detections without a box), nearest first."""
    candidates = []
    boxes_keyed = [_box(b) for b in keyed]
    for i, a in enumerate(plain):
        box_a = _box(a)
        for j, b in enumerate(keyed):
            if _class(a) != _class(b):
                continue
            box_b = boxes_keyed[j]
            if len(box_a) and len(box_a) == len(box_b):
                distance, limit = float(np.abs(box_a - box_b).max()), context.pixel_tolerance
            else:
                distance, limit = abs(float(a.get("score", 0)) - float(b.get("score", 0))), context.tolerances.score
            if distance <= limit:
                candidates.append((distance, i, j))
    pairs, used_plain, used_keyed = [], set(), set()
    for _, i, j in sorted(candidates):
        if i not in used_plain and j not in used_keyed:
            pairs.append((i, j))
            used_plain.add(i)
            used_keyed.add(j)
    return pairs


def _reason(item: dict, other: list, flipped_other: list, unmatched_other: list, context: Context) -> str | None:
    """Why a detection found in one answer only may be a float's flip (module docstring), or None."""
    t, score = context.tolerances, float(item.get("score", 0.0))
    if context.score_threshold is not None and abs(score - context.score_threshold) <= t.score:
        return "near the score threshold"
    box = _box(item)
    for y in unmatched_other:
        if _class(y) != _class(item) and len(box) and len(_box(y)) == len(box) \
                and np.abs(_box(y) - box).max() <= context.pixel_tolerance \
                and abs(float(y.get("score", 0.0)) - score) <= t.score:
            return "a near-tied class"
    if context.iou_threshold is not None:
        for y in other:
            if _class(y) != _class(item) or float(y.get("score", 0.0)) < score - t.score:
                continue
            overlap = _iou(box, _box(y))
            if abs(overlap - context.iou_threshold) <= t.iou_band:
                return "an overlap at the NMS threshold"
            if overlap > context.iou_threshold - t.iou_band and any(y is f for f in flipped_other):
                return "suppressed by a flipped detection"
    limit = context.max_detections
    if limit and len(other) >= limit and score <= min(float(y.get("score", 0.0)) for y in other) + t.score:
        return "at the detection limit"
    return None


def compare_detections(plain: list, keyed: list, context: Context, check: KindCheck) -> None:
    """One frame's detections as sets: matched pairs compared field by field; the rest explained or mismatched."""
    pairs = _match(plain, keyed, context)
    for i, j in pairs:
        before = check.problems
        compare_value(plain[i], keyed[j], check.kind, context, check, f"{check.kind}[class {_class(plain[i])}]")
        check.agreed += int(check.problems == before)
    sides = {"plain": [plain[i] for i in sorted(set(range(len(plain))) - {p for p, _ in pairs})],
             "keyed": [keyed[j] for j in sorted(set(range(len(keyed))) - {k for _, k in pairs})]}
    explained: dict[str, list] = {"plain": [], "keyed": []}
    reasons: dict[int, str] = {}
    changed = True
    while changed:  # an explained flip may explain the detection it suppressed
        changed = False
        for side, other in (("plain", "keyed"), ("keyed", "plain")):
            for item in sides[side]:
                if id(item) in reasons:
                    continue
                reason = _reason(item, keyed if side == "plain" else plain, explained[other], sides[other], context)
                if reason is not None:
                    reasons[id(item)] = reason
                    explained[side].append(item)
                    changed = True
    check.compared += len(pairs)
    for side, items in sides.items():
        for item in items:
            if id(item) in reasons:
                check.flips[reasons[id(item)]] += 1
                context.flipped[item.get("class", _class(item))] += 1 if side == "keyed" else -1
            else:
                check.compared += 1
                check.problem(f"a detection of class {_class(item)!r} (score {float(item.get('score', 0)):.4g}, box "
                              f"{[round(v, 1) for v in _box(item).tolist()]}) only in the {side} model's answer")
