"""What a YOLO head writes, read one way by every ultralytics decoder: the candidates of one frame.

An ultralytics head (detect, segment, pose, obb; YOLOv8, YOLO11, YOLOv10, YOLO26) exports one of two
layouts of its output (batch of one), both with the box decode inside the graph:

- **anchors** ``(N, 4 + classes + E, A)``: per anchor a box (cx, cy, w, h in input pixels), one score per
  class (sigmoid) and E extra values (segment: mask coefficients; pose: keypoints; obb: the angle). An
  anchor is a candidate when its best class scores at least the threshold; NMS chooses among them.
- **end-to-end** ``(N, K, 6 + E)`` (``export(nms=False)`` of YOLOv10 and YOLO26, the one-to-one head):
  rows of a box (x0, y0, x1, y1; obb: cx, cy, w, h), the score, the class index and the same E extra
  values, already chosen and ordered best first by the model (top-k, no NMS). A row is kept when its
  score is at least the threshold, at most ``max_detections`` of them, as ultralytics keeps them.

The layout is told by the shape: the anchors layout has fewer channels than anchors (``C < A``), the
end-to-end one more rows than values (``K > 6 + E``). :func:`read` returns the same
:class:`Candidates` for both; ``chosen`` says whether the model has already chosen (no NMS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.errors import FrameError
from edge.tasks.geometry import Geometry

END2END_VALUES = 6  # a row's box (4), score and class, before its extra values


@dataclass(frozen=True)
class Layout:
    """How one head output is laid out: ``anchors`` or ``end2end``, its class count and extra values."""

    kind: str  # "anchors" or "end2end"
    classes: int | None  # anchors: the class scores per anchor; end2end: None (rows carry a class index)
    extra: int  # values per candidate after the box and the scores


def layout_of(shape: list[int | None]) -> str | None:
    """``anchors``, ``end2end``, or None when the shape (N, C, A) / (N, K, V) is neither (or cannot be told)."""
    if len(shape) != 3:
        return None
    rows, values = shape[1], shape[2]
    if values is not None and values >= END2END_VALUES and (rows is None or rows > values):
        return "end2end"
    if rows is not None and rows > 4 and (values is None or values > rows):
        return "anchors"
    return None


@dataclass
class Candidates:
    """One frame's candidates, in the model's input pixels."""

    boxes: np.ndarray  # (K, 4): x0, y0, x1, y1, or cx, cy, w, h where the caller asked for centres (obb)
    scores: np.ndarray  # (K,) float64
    classes: np.ndarray  # (K,) int64
    extra: np.ndarray  # (K, E) float64: mask coefficients, keypoints, the angle
    chosen: bool  # the model chose them (end-to-end): no NMS

    def __len__(self) -> int:
        return len(self.scores)


def read(output: np.ndarray, layout: Layout, threshold: float, limit: int, centres: bool = False) -> Candidates:
    """The candidates of one frame's head output ``output`` (batch of one). ``centres``: boxes stay cx, cy, w, h
    (obb; the end-to-end obb head writes centres too), else corners."""
    found = (_from_anchors(output[0], layout, threshold, centres) if layout.kind == "anchors"
             else _from_rows(output[0], layout, threshold, limit))
    if not (np.all(np.isfinite(found.boxes)) and np.all(np.isfinite(found.extra))):
        raise FrameError(f"the model's head output {list(output.shape)} gives boxes or values that are not finite; "
                         f"the frame cannot be decoded")
    return found


def _from_anchors(out: np.ndarray, layout: Layout, threshold: float, centres: bool) -> Candidates:
    classes = layout.classes
    scores_all = out[4:4 + classes]  # (C, A)
    best = scores_all.max(axis=0)  # (A,): a reduction along the contiguous rows, no transpose
    keep = np.flatnonzero(best >= threshold)
    if len(keep) == 0:
        return _none(layout.extra)
    labels = scores_all[:, keep].argmax(axis=0).astype(np.int64)  # (K,): ties, the first class
    box = out[:4, keep].astype(np.float64).T  # (4, K) -> (K, 4): cx, cy, w, h
    if not centres:
        box = np.concatenate([box[:, :2] - box[:, 2:] / 2, box[:, :2] + box[:, 2:] / 2], axis=1)  # (K, 4) corners
    extra = out[4 + classes:, keep].astype(np.float64).T  # (E, K) -> (K, E)
    return Candidates(box, best[keep].astype(np.float64), labels, extra, chosen=False)


def _from_rows(rows: np.ndarray, layout: Layout, threshold: float, limit: int) -> Candidates:
    keep = np.flatnonzero(rows[:, 4] >= threshold)[:limit]  # rows come best first: the first `limit` kept
    if len(keep) == 0:
        return _none(layout.extra)
    kept = rows[keep].astype(np.float64)  # (K, 6 + E)
    labels = np.rint(kept[:, 5])
    if np.any(labels < 0) or not np.all(np.isfinite(labels)):
        raise FrameError(f"the model's end-to-end rows give class {kept[:, 5].min():g}, and a class is an index "
                         f"from 0; the frame cannot be decoded")
    return Candidates(kept[:, :4], kept[:, 4], labels.astype(np.int64), kept[:, END2END_VALUES:], chosen=True)


def _none(extra: int) -> Candidates:
    return Candidates(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.zeros((0, extra)), chosen=True)


def points(pairs: np.ndarray, geometry: Geometry) -> np.ndarray:
    """(K, P, 2) x, y in the model's input pixels -> the camera frame's, clipped to what the model saw."""
    count, many, _ = pairs.shape
    camera = geometry.to_camera(pairs.reshape(count, many * 2)).reshape(count * many, 2)  # (K*P, 2)
    clipped = geometry.clip(np.concatenate([camera, camera], axis=1))[:, :2]  # as boxes (x, y, x, y): (K*P, 2)
    return clipped.reshape(count, many, 2)
