"""Oriented boxes: YOLO OBB heads (YOLOv8, YOLO11, YOLO26), a rotated box per detection.

One output, in either layout of ``edge.tasks.heads``: anchors ``(N, 4 + classes + 1, A)`` (cx, cy, w, h
in the model's input pixels, class scores, then the angle theta in radians, in [-pi/4, 3pi/4) from the
graph's ``(sigmoid - 0.25) pi``) or end-to-end ``(N, rows, 7)`` (cx, cy, w, h, score, class, theta).

Anchors: best class, threshold, then OpenCV's rotated NMS (``cv2.dnn.NMSBoxesRotated``: the polygons'
intersection over union) class by class, in the model's pixels (where the boxes are rectangles). The
corners are ultralytics' ``xywhr2xyxyxyxy`` of the box as the model gives it::

    v1 = w/2 (cos theta, sin theta),   v2 = h/2 (-sin theta, cos theta)
    corners = (c + v1 + v2, c + v1 - v2, c - v1 - v2, c - v1 + v2)

mapped to the camera frame's pixels through the frame's geometry (a per-axis affine map: a rectangle
stays one under crop and letterbox, a parallelogram under stretch). The answer's ``size`` and ``angle``
are the mapped box's sides |c1 - c4|, |c1 - c2| and the direction of c4 -> c1, regularised as
ultralytics' ``regularize_rboxes`` does (angle in [0, pi/2), w and h swapped where theta mod pi >=
pi/2): one description per rectangle. ``box`` is the corners' enclosing box, clipped to what the model
saw (for trackers, zones and counts); the corners are not clipped.

Ultralytics' own NMS for OBB is another rule: Fast-NMS (a box is dropped when any better box of its
class overlaps it, kept or not) over the probabilistic IoU of the boxes' Gaussians (``batch_probiou``:
``1 - sqrt(1 - exp(-B))``, B the Bhattacharyya distance of N(c, R diag(w^2, h^2)/12 R^T)), which reads
larger than the polygons' IoU for boxes of one size (0.92 against 0.84 for near-duplicates). Under one
threshold it keeps fewer boxes than OpenCV's rule. ``[task] rotated_nms = "probiou"`` applies it here,
in numpy, and gives ultralytics' answers; ``polygon`` (the default) is OpenCV's.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge.errors import ConfigError
from edge.tasks.base import Decoder
from edge.tasks.geometry import Geometry
from edge.tasks.heads import Layout, layout_of, read
from edge.tasks.nms import detection
from edge.tasks.yolo import answer
from firmware_sim.manifest import OutputSpec, shape_text


def corners_of(rboxes: np.ndarray) -> np.ndarray:
    """(K, 5) cx, cy, w, h, theta -> (K, 4, 2) corners, in ultralytics' order."""
    centre, half_w, half_h, theta = rboxes[:, :2], rboxes[:, 2:3] / 2, rboxes[:, 3:4] / 2, rboxes[:, 4:5]
    cos, sin = np.cos(theta), np.sin(theta)
    v1 = np.concatenate([half_w * cos, half_w * sin], axis=1)  # (K, 2)
    v2 = np.concatenate([-half_h * sin, half_h * cos], axis=1)  # (K, 2)
    return np.stack([centre + v1 + v2, centre + v1 - v2, centre - v1 - v2, centre - v1 + v2], axis=1)


def regularise(width: np.ndarray, height: np.ndarray, theta: np.ndarray):
    """Ultralytics' ``regularize_rboxes``: theta in [0, pi/2), w and h swapped where theta mod pi >= pi/2."""
    swap = np.mod(theta, math.pi) >= math.pi / 2
    return np.where(swap, height, width), np.where(swap, width, height), np.mod(theta, math.pi / 2)


def suppress_rotated(rboxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, score_threshold: float,
                     iou_threshold: float, limit: int) -> np.ndarray:
    """Indices of the rotated boxes (K, 5) kept by OpenCV's rotated NMS class by class, best first (exact ties:
    by the box's values, so that the anchors' order does not matter)."""
    canonical = np.lexsort(np.vstack([rboxes[:, ::-1].T, -scores]))  # keys theta, h, w, cy, cx, -score
    kept = []
    for klass in np.unique(classes):
        members = canonical[classes[canonical] == klass]  # this class's candidates, in canonical order
        rects = [((float(x), float(y)), (float(w), float(h)), math.degrees(float(t)))
                 for x, y, w, h, t in rboxes[members]]
        chosen = cv2.dnn.NMSBoxesRotated(rects, scores[members].astype(np.float32).tolist(), score_threshold,
                                         iou_threshold)
        kept.extend(members[np.asarray(chosen, np.int64).reshape(-1)])
    order = {index: rank for rank, index in enumerate(canonical)}
    return np.asarray(sorted(kept, key=order.__getitem__), np.int64)[:limit]


def probiou(rboxes: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """(K, K) probabilistic IoU of rotated boxes (K, 5) (ultralytics' ``batch_probiou``: 1 - the Hellinger distance
    of the boxes' Gaussians, covariance R diag(w^2, h^2) / 12 R^T)."""
    x, y, w, h, theta = rboxes.T  # (K,) each
    cos, sin = np.cos(theta), np.sin(theta)
    a, b = w ** 2 / 12, h ** 2 / 12
    ca, cb, cc = a * cos ** 2 + b * sin ** 2, a * sin ** 2 + b * cos ** 2, (a - b) * cos * sin  # (K,) each
    sa, sb, sc = (v[:, None] + v[None, :] for v in (ca, cb, cc))  # (K, K) sums of the pairs' covariances
    dx, dy = x[:, None] - x[None, :], y[:, None] - y[None, :]  # (K, K)
    det = sa * sb - sc ** 2
    t1 = (sa * dy ** 2 + sb * dx ** 2) / (det + eps) * 0.25
    t2 = (sc * -dx * dy) / (det + eps) * 0.5
    own = np.clip(ca * cb - cc ** 2, 0, None)  # (K,)
    t3 = np.log(det / (4 * np.sqrt(own[:, None] * own[None, :]) + eps) + eps) * 0.5
    distance = np.clip(t1 + t2 + t3, eps, 100.0)
    return 1 - np.sqrt(1 - np.exp(-distance) + eps)


def suppress_probiou(rboxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float,
                     limit: int) -> np.ndarray:
    """Ultralytics' own rotated NMS: Fast-NMS over :func:`probiou` class by class (a box is dropped when any better
    box of its class, kept or not, overlaps it by more than the threshold), best first."""
    canonical = np.lexsort(np.vstack([rboxes[:, ::-1].T, -scores]))  # best first, ties by the box
    boxes, labels = rboxes[canonical], classes[canonical]
    overlap = np.triu(probiou(boxes), 1) * (labels[:, None] == labels[None, :])  # (K, K): better row, worse column
    return canonical[~(overlap > iou_threshold).any(axis=0)][:limit]


class ObbDecoder(Decoder):
    name = "obb"
    task = "obb"

    @classmethod
    def fits(cls, outputs: list[OutputSpec]) -> bool:
        """One head output, anchors or end-to-end."""
        return len(outputs) == 1 and layout_of(outputs[0].shape) is not None

    def check(self) -> None:
        shapes = [spec.shape for spec in self.outputs]
        kind = layout_of(shapes[0]) if len(shapes) == 1 else None
        fits = (kind == "anchors" and shapes[0][1] > 5) or (kind == "end2end" and shapes[0][2] == 7)
        if not fits:
            raise ConfigError(f"the obb decoder takes one output (N, 4 + classes + 1, anchors) or (N, rows, 7); "
                              f"this model gives {', '.join(shape_text(s) for s in shapes)}; set [task] decoder or "
                              f"kind to match the model")
        classes = shapes[0][1] - 5 if kind == "anchors" else None
        if classes is not None and self.labels and len(self.labels) != classes:
            raise ConfigError(f"the obb model's output {shape_text(shapes[0])} scores {classes} classes, the labels "
                              f"name {len(self.labels)}; give task.labels with one name per class")
        self.layout = Layout(kind, classes, 1)

    def decode(self, tensors: list[np.ndarray], geometry: Geometry) -> dict:
        settings = self.settings
        found = read(tensors[0], self.layout, settings.score_threshold, settings.max_detections, centres=True)
        if len(found) == 0:
            return answer([], settings.classes)
        rboxes = np.concatenate([found.boxes, found.extra[:, :1]], axis=1)  # (K, 5): cx, cy, w, h, theta
        if found.chosen:
            chosen = np.arange(len(found))
        elif settings.rotated_nms == "probiou":
            chosen = suppress_probiou(rboxes, found.scores, found.classes, settings.iou_threshold,
                                      settings.max_detections)
        else:
            chosen = suppress_rotated(rboxes, found.scores, found.classes, settings.score_threshold,
                                      settings.iou_threshold, settings.max_detections)
        corners = corners_of(rboxes[chosen])  # (K', 4, 2) model pixels
        camera = geometry.to_camera(corners.reshape(len(chosen), 8)).reshape(len(chosen), 4, 2)  # (K', 4, 2)
        side_w, side_h = camera[:, 0] - camera[:, 3], camera[:, 0] - camera[:, 1]  # (K', 2) each
        width, height, angle = regularise(np.hypot(*side_w.T), np.hypot(*side_h.T),
                                          np.arctan2(side_w[:, 1], side_w[:, 0]))
        boxes = geometry.clip(np.concatenate([camera.min(axis=1), camera.max(axis=1)], axis=1))  # (K', 4)
        items = []
        for row, i in enumerate(chosen):
            extra = {"corners": np.round(camera[row], 2).tolist(), "angle": round(float(angle[row]), 6),
                     "size": [round(float(width[row]), 2), round(float(height[row]), 2)]}
            items.append(detection(boxes[row], found.scores[i], found.classes[i], self.label(int(found.classes[i])),
                                   extra))
        return answer(items, settings.classes)
