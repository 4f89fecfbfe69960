"""Non-maximum suppression by OpenCV (``cv2.dnn.NMSBoxesBatched``: class by class), and a detection's JSON.

Boxes are (x0, y0, x1, y1) in the camera frame's pixels; OpenCV takes (x, y, w, h). What is kept is
ordered by score, highest first, exact ties by the box's corners, so that the same candidates give the same list
in whatever order they come.
"""

from __future__ import annotations

import cv2
import numpy as np


def suppress(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, score_threshold: float,
             iou_threshold: float, limit: int) -> np.ndarray:
    """Indices of the boxes kept, best first. boxes: (K, 4) x0, y0, x1, y1; scores, classes: (K,)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    # one canonical order (score, then the box's corners) in and out, so that exact ties are broken the same way
    # whatever order the model wrote its anchors in (a fresh model writes them in a keyed order)
    canonical = np.lexsort(np.vstack([boxes[:, ::-1].T, -scores]))  # keys x1, y1, x0, y0, -score: score first
    boxes, scores, classes = boxes[canonical], scores[canonical], classes[canonical]
    xywh = np.hstack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).astype(np.float64)  # (K, 4)
    kept = cv2.dnn.NMSBoxesBatched(xywh, scores.astype(np.float32), classes.astype(np.int32), score_threshold,
                                   iou_threshold)
    kept = np.sort(np.asarray(kept, np.int64).reshape(-1))  # canonical positions: best first
    return canonical[kept][:limit]


def detection(box: np.ndarray, score: float, index: int, name: str, extra: dict | None = None) -> dict:
    """``{box: [x0, y0, x1, y1], score, label, class}`` (pixels rounded to 0.01, score to 1e-6)."""
    found = {"box": np.round(np.asarray(box, np.float64), 2).tolist(), "score": round(float(score), 6),
             "label": int(index), "class": name}
    return found | (extra or {})
