"""What "the same" means for ``keycam verify``: the tolerances, in one place, and the comparison of two models'
outputs and decoded answers (a detector's detections: ``edge.lab.detections``).

Tolerances (:data:`TOLERANCES`) and why:

- ``raw`` = 1e-4 of an output's range (its largest magnitude on that frame, the plain model's). The keyed model
  computes the plain model's sums in another order (under ``boundary`` after one gather; under ``fresh`` in
  reordered reductions), so each value differs by float32 rounding: measured 1e-8 to 2e-6 of the range on real
  exports. 1e-4 is the compiler's own tests' tolerance (``tests/export/helpers.TOLERANCE``).
- ``pixels`` = 0.1 of one pixel of the model's input (scaled to the camera frame's pixels by the frame's
  geometry), plus ``rounding`` 0.01 for the answers' rounding: boxes, keypoints, corners. A coordinate within the
  raw tolerance differs by at most 1e-4 of the output's range, 0.03 px for a 320-px detector.
- ``score`` = 1e-4, absolute: decoded scores, probabilities, keypoint visibilities, area fractions (0..1).
- ``value`` = 1e-4 relative (abs 1e-5: answers round to 6 decimals): any other decoded number (angles, means).
  Integers (labels, counts) and text must be equal.

Thresholds of floats, reported and not counted against exactness, because a value within the raw tolerance of a
threshold may land on either side of it while every raw value agrees:

- detections: a detection in one answer only whose score lies within ``score`` of the score threshold, or whose
  overlap with a kept box lies within ``iou_band`` (1e-3) of the NMS threshold, and what follows from it
  (``edge.lab.detections``); the per-class counts follow those flips;
- masks: a mask is its logits' sign, pixel by pixel, so a pixel whose logit lies within rounding of 0 may flip.
  Outlines (a mask's polygons, a class map's contours) that differ are compared by the model-input pixels they
  enclose, and mask sizes by their pixel counts: up to ``mask_pixels`` (4) pixels may differ; more is a mismatch.

Where the model's own order is not defined, sets are compared, not sequences: detections (matched one to one by
class and box), and a top-k output (``(N, K, D)``, K rows of D values, K > D: end-to-end detectors'
``(1, 300, 6)``) whose rows come back in another order (near-tied scores in the model's own TopK): it is equal when
its rows are, as a set (:func:`rows_as_set`; the report says how many rows moved).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass(frozen=True)
class Tolerances:
    raw: float = 1e-4  # relative to the output's range (its largest magnitude on the frame)
    pixels: float = 0.1  # model-input pixels, scaled to camera pixels by the frame's geometry
    rounding: float = 0.01  # camera pixels: answers round coordinates to 0.01
    score: float = 1e-4  # absolute, scores and fractions in 0..1; also the band around the score threshold
    value: float = 1e-4  # relative, any other decoded number
    value_floor: float = 1e-5  # absolute floor of ``value`` (answers round to 6 decimals)
    iou_band: float = 1e-3  # around the NMS IoU threshold
    mask_pixels: int = 4  # model-input pixels a mask or an outline may differ by: pixels at the mask's threshold


TOLERANCES = Tolerances()

OUTLINE_KEYS = {"contours", "contour", "polygon", "polygons", "outline", "outlines", "segments"}
PIXEL_KEYS = {"box", "boxes", "keypoints", "points", "corners", "xy", "xyxy", "xywh", "xywhr", "center",
              "centre"} | OUTLINE_KEYS
SCORE_KEYS = {"score", "scores", "confidence", "conf", "probability", "probabilities", "visibility", "area"}
AREA_KEYS = {"pixels"}  # a mask's size: an integer count of its grid's pixels, or camera pixels


# -- raw outputs ----------------------------------------------------------------------------------------------

def raw_difference(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """(largest absolute difference, the plain output's range) of one frame's output; NaN equals NaN."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    diff = np.abs(got - want)
    both = np.isnan(got) & np.isnan(want)
    diff = np.where(both, 0.0, np.where(np.isnan(diff), np.inf, diff))
    finite = np.abs(want[np.isfinite(want)])
    return (float(diff.max()) if diff.size else 0.0), (float(finite.max()) if finite.size else 0.0)


def rows_as_set(got: np.ndarray, want: np.ndarray, tolerance: float) -> tuple[int, float] | None:
    """A top-k output of one frame, (K, D) with K > D, compared as a set of rows: (rows in another place, largest
    difference of a matched pair), or None when no one-to-one matching within ``tolerance`` exists."""
    if got.ndim != 2 or got.shape != want.shape or got.shape[0] <= got.shape[1] or got.shape[0] > 4096:
        return None
    got, want = got.astype(np.float64), want.astype(np.float64)
    step = max(1, 2_000_000 // want.size)  # rows of ``got`` at a time: (step, K, D) differences in memory
    distance = np.concatenate([np.abs(got[i:i + step, None, :] - want[None]).max(axis=2)
                               for i in range(0, len(got), step)])  # (K, K): keyed row i against plain row j
    taken = np.zeros(len(want), bool)
    moved, worst = 0, 0.0
    for row in np.argsort(distance.min(axis=1)):  # the surest rows first
        candidates = np.flatnonzero(~taken & (distance[row] <= tolerance))
        if len(candidates) == 0:
            return None
        best = candidates[np.argmin(distance[row, candidates])]
        taken[best] = True
        moved += int(best != row)
        worst = max(worst, float(distance[row, best]))
    return moved, worst


# -- decoded answers ------------------------------------------------------------------------------------------

@dataclass
class KindCheck:
    """One kind of answer (a top-level key of the decoder's answer) over every frame."""

    kind: str
    compared: int = 0  # items (detections) or frames
    agreed: int = 0
    worst: dict = field(default_factory=dict)  # category (pixels, score, value) -> the largest difference seen
    flips: Counter = field(default_factory=Counter)  # reason -> detections in one answer only, explained
    problems: int = 0
    first_problem: str = ""
    sets: bool = False  # compared as a set (detections)
    classifier: bool = False  # a label and a score per frame (top-1)

    @property
    def ok(self) -> bool:
        return self.problems == 0

    def problem(self, text: str) -> None:
        self.problems += 1
        if not self.first_problem:
            self.first_problem = text

    def note(self, category: str, value: float) -> None:
        self.worst[category] = max(self.worst.get(category, 0.0), value)


@dataclass
class Context:
    """What the comparison of one frame's answers needs: its pixel tolerance (camera pixels), the decoder's
    thresholds, and the class flips found in its detections (the counts follow them)."""

    pixel_tolerance: float
    pixel_size: tuple[float, float] = (1.0, 1.0)  # one model-input pixel in camera pixels, x and y
    score_threshold: float | None = None
    iou_threshold: float | None = None
    max_detections: int | None = None
    tolerances: Tolerances = TOLERANCES
    flipped: Counter = field(default_factory=Counter)  # class -> keyed minus plain, of explained flips


def compare_answers(plain: dict, keyed: dict, context: Context, checks: dict[str, KindCheck]) -> None:
    """Compare one frame's decoded answers kind by kind, into ``checks`` (detection lists before the rest, so that
    counts can follow their explained flips)."""
    kinds = sorted(set(plain) | set(keyed), key=lambda k: (not _is_detections(plain.get(k), keyed.get(k)), k))
    for kind in kinds:
        check = checks.setdefault(kind, KindCheck(kind))
        if kind not in plain or kind not in keyed:
            check.compared += 1
            check.problem(f"only the {'keyed' if kind in keyed else 'plain'} model's answer has it")
            continue
        a, b = plain[kind], keyed[kind]
        if _is_detections(a, b):
            from edge.lab.detections import compare_detections  # it compares a matched pair's fields with this module

            check.sets = True
            compare_detections(a, b, context, check)
        elif kind == "counts" and isinstance(a, dict) and isinstance(b, dict):
            _compare_counts(a, b, context, check)
        else:
            check.classifier = check.classifier or _is_label(a)
            check.compared += 1
            before = check.problems
            compare_value(a, b, kind, context, check, kind)
            check.agreed += int(check.problems == before)


def _is_detection(item) -> bool:
    return isinstance(item, dict) and ("box" in item or ("score" in item and ("class" in item or "label" in item)))


def _is_detections(a, b) -> bool:
    values = [v for v in (a, b) if isinstance(v, list)]
    items = [item for v in values for item in v]
    return bool(values) and len(values) == sum(v is not None for v in (a, b)) \
        and all(_is_detection(item) for item in items)


def _is_label(value) -> bool:
    return isinstance(value, dict) and "label" in value and "score" in value and "box" not in value


def _compare_counts(plain: dict, keyed: dict, context: Context, check: KindCheck) -> None:
    """Per-class counts: equal, but for the detections explained as flips (reported in their own kind's line)."""
    check.compared += 1
    for name in sorted(set(plain) | set(keyed), key=str):
        got, want = keyed.get(name, 0), plain.get(name, 0)
        if got - want != context.flipped.get(name, 0):
            check.problem(f"{name!r}: {got} in the keyed model's answer, {want} in the plain model's")
            return
    check.agreed += 1


def compare_value(plain, keyed, key: str, context: Context, check: KindCheck, path: str) -> None:
    """Two JSON values, recursively; numbers by the tolerance of the nearest key above them (module docstring)."""
    if isinstance(plain, dict) and isinstance(keyed, dict):
        if set(plain) != set(keyed):
            check.problem(f"{path}: fields {sorted(plain)} in the plain model's answer, {sorted(keyed)} in the keyed")
            return
        for name in plain:
            compare_value(plain[name], keyed[name], str(name), context, check, f"{path}.{name}")
    elif isinstance(plain, list) and isinstance(keyed, list):
        if key in PIXEL_KEYS and _coordinates(plain, keyed, key, context, check, path):
            return
        if _is_detections(plain, keyed):
            from edge.lab.detections import compare_detections

            compare_detections(plain, keyed, context, check)
        elif len(plain) != len(keyed):
            check.problem(f"{path}: {len(keyed)} entries in the keyed model's answer, {len(plain)} in the plain's")
        else:
            point = key in PIXEL_KEYS and len(plain) == 3 and all(_number(v) for v in plain + keyed)
            for index, (a, b) in enumerate(zip(plain, keyed)):
                inner = "score" if point and index == 2 else key  # (x, y, visibility): a keypoint
                compare_value(a, b, inner, context, check, f"{path}[{index}]")
    elif _number(plain) and _number(keyed):
        _compare_number(float(plain), float(keyed), key, context, check, path,
                        integers=isinstance(plain, int) and isinstance(keyed, int))
    elif plain != keyed:
        check.problem(f"{path}: {keyed!r} in the keyed model's answer, {plain!r} in the plain model's")


def _array(value) -> np.ndarray | None:
    try:
        array = np.asarray(value, np.float64)
    except (TypeError, ValueError):  # ragged, or not numbers
        return None
    return array if array.size else None


def _coordinates(plain: list, keyed: list, key: str, context: Context, check: KindCheck, path: str) -> bool:
    """Coordinates (boxes, keypoints, corners, outlines) compared at once; False when they are not arrays of numbers
    of one shape. Keypoints (x, y, visibility): the third value is a score. Outlines that differ are compared by the
    pixels they enclose (:func:`_outlines`)."""
    a, b = _array(plain), _array(keyed)
    if a is None or b is None or a.shape != b.shape:
        if key in OUTLINE_KEYS:
            _outlines(plain, keyed, context, check, path)
            return True
        return False
    diff = np.abs(a - b)
    if key == "keypoints" and a.ndim == 2 and a.shape[1] == 3:
        check.note("score", float(diff[:, 2].max()))
        if diff[:, 2].max() > context.tolerances.score:
            check.problem(f"{path}: a keypoint's visibility differs by {diff[:, 2].max():.3g}")
        diff = diff[:, :2]
    worst = float(diff.max())
    if worst <= context.pixel_tolerance:
        check.note("pixels", worst)
    elif key in OUTLINE_KEYS:
        _outlines(plain, keyed, context, check, path)
    else:
        check.problem(f"{path}: coordinates differ by {worst:.3g} px (tolerance {context.pixel_tolerance:.2g})")
    return True


def _raster(outlines, origin: np.ndarray, size: tuple[float, float], shape: tuple[int, int]) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    for polygon in outlines:
        points = np.round((np.asarray(polygon, np.float64).reshape(-1, 2) - origin) / size).astype(np.int32)
        cv2.fillPoly(canvas, [points + 2], 1)
    return canvas


def _outlines(plain, keyed, context: Context, check: KindCheck, path: str) -> None:
    """Two sets of outlines (a mask's polygons, a class's contours) as the model-input pixels they enclose: equal but
    for at most ``mask_pixels`` pixels, a pixel whose logit lies at the mask's threshold flipping (reported)."""
    def polygons(value) -> list:
        array = _array(value)
        return [value] if array is not None and array.ndim == 2 else list(value)

    sets = [polygons(plain), polygons(keyed)]
    every = [np.asarray(p, np.float64).reshape(-1, 2) for side in sets for p in side if len(p)]
    if not every:
        return
    points = np.concatenate(every)
    origin, size = points.min(axis=0), np.asarray(context.pixel_size, np.float64)
    extent = np.ceil((points.max(axis=0) - origin) / size).astype(int) + 5
    plain_raster, keyed_raster = (_raster(side, origin, size, (extent[1], extent[0])) for side in sets)
    differ = int(np.count_nonzero(plain_raster != keyed_raster))
    if differ > context.tolerances.mask_pixels:
        check.problem(f"{path}: the outlines enclose {differ} model pixels that differ (allowed: "
                      f"{context.tolerances.mask_pixels}, pixels at the mask's threshold)")
    elif differ:
        check.flips["mask pixels at the threshold"] += differ


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _compare_number(a: float, b: float, key: str, context: Context, check: KindCheck, path: str,
                    integers: bool) -> None:
    t = context.tolerances
    diff = abs(a - b) if not (np.isnan(a) and np.isnan(b)) else 0.0
    if key in AREA_KEYS:  # a mask's size: model pixels at its threshold may flip (integers: its own grid's pixels)
        unit = 1.0 if integers else context.pixel_size[0] * context.pixel_size[1]
        if diff <= t.mask_pixels * unit + (0 if integers else 0.01):
            if diff > (0 if integers else 0.01):
                check.flips["mask pixels at the threshold"] += max(1, round(diff / unit))
            return
        category, limit = "pixels", 0.0
    elif key in PIXEL_KEYS:
        category, limit = "pixels", context.pixel_tolerance
    elif key in SCORE_KEYS:
        category, limit = "score", t.score
    elif integers:
        category, limit = "value", 0.0
    else:
        category, limit = "value", max(t.value * max(abs(a), abs(b)), t.value_floor)
    if not diff <= limit:  # NaN against a number is a difference too
        check.problem(f"{path}: {b:.6g} in the keyed model's answer, {a:.6g} in the plain model's "
                      f"(tolerance {limit:.2g})")
    elif not integers or category != "value":
        check.note(category, diff)


# -- what the report says -------------------------------------------------------------------------------------

def describe(check: KindCheck) -> tuple[str, str]:
    """(column, text) of one kind's line in the report: what was compared, how close, flips, and the verdict."""
    within = "; ".join(f"{name} within {check.worst[key]:.2g}{' px' if key == 'pixels' else ''}"
                       for key, name in (("pixels", "coordinates"), ("score", "scores"), ("value", "values"))
                       if key in check.worst)
    if check.classifier and not check.sets:
        share = check.agreed / check.compared if check.compared else 1.0
        column = "top-1 agree"
        text = f"{share * 100:.2f} % ({check.kind}: {check.agreed} of {check.compared} frames" \
               + (f"; {within}" if within else "") + ")"
    else:
        column = check.kind
        text = (f"{check.agreed} of {check.compared} matched by class and box, as sets" if check.sets
                else f"equal on {check.agreed} of {check.compared} frames") + (f" ({within})" if within else "")
    if check.flips:
        flips = ", ".join(f"{count} {reason}" for reason, count in sorted(check.flips.items()))
        text += f"; in one answer only, not counted: {flips}"
    if check.ok:
        return column, text + ": ok"
    plural = "s" if check.problems > 1 else ""
    return column, text + f"; NOT EXACT: {check.problems} difference{plural}, first: {check.first_problem}"
