"""SSD-style detections (BlazeFace, MobileNet-SSD): box regressors and scores over generated anchors.

Two outputs: regressors (N, A, R) and scores (N, A, C), one row per anchor. The anchors are made as
MediaPipe's SSD anchor options describe them (:class:`~edge.tasks.base.AnchorsConfig`): layers of equal
stride are grouped; layer i has the scale ``s_i = min + (max - min) i / (L - 1)``; each aspect ratio r
gives an anchor of width ``s sqrt(r)`` and height ``s / sqrt(r)`` (1 and 1 with fixed anchor sizes), and
an interpolated one of scale ``sqrt(s_i s_{i+1})``; every cell (x, y) of the ``ceil(W / stride)`` x
``ceil(H / stride)`` grid of a group gets the group's anchors, centred at ``((x + offset) / grid_w,
(y + offset) / grid_h)``. A regressor's first four values are the box's offset from its anchor and its
size in input pixels::

    cx = x / W * anchor_w + anchor_cx,   cy = y / H * anchor_h + anchor_cy,   w = w / W * anchor_w,   h = ...

(as fractions of the input; times W or H in input pixels: ``x * anchor_w + anchor_cx * W``, ...)

and the rest are keypoints (x, y pairs) decoded like the centre. Scores are logits (sigmoid, clipped
at +-100 as MediaPipe does). The anchors axis must be in its natural order, so under the ``fresh``
policy the pipeline restores it with the key first (``natural_order``).
"""

from __future__ import annotations

import math

import numpy as np

from edge.errors import ConfigError, FrameError
from edge.tasks.base import AnchorsConfig, Decoder
from edge.tasks.geometry import Geometry
from edge.tasks.nms import detection, suppress
from edge.tasks.yolo import answer
from firmware_sim.manifest import OutputSpec, shape_text


def _scale(low: float, high: float, index: int, count: int) -> float:
    return (low + high) / 2 if count == 1 else low + (high - low) * index / (count - 1)


def ssd_anchors(options: AnchorsConfig, width: int, height: int) -> np.ndarray:
    """(A, 4) anchors: centre x, centre y, width, height, all as fractions of the input."""
    strides, count = options.strides, len(options.strides)
    anchors = []
    layer = 0
    while layer < count:
        shapes = []  # (aspect ratio, scale) of the anchors of each cell of this group
        last = layer
        while last < count and strides[last] == strides[layer]:
            scale = _scale(options.min_scale, options.max_scale, last, count)
            shapes += [(ratio, scale) for ratio in options.aspect_ratios]
            if options.interpolated_scale_aspect_ratio > 0:
                upper = 1.0 if last == count - 1 else _scale(options.min_scale, options.max_scale, last + 1, count)
                shapes.append((options.interpolated_scale_aspect_ratio, math.sqrt(scale * upper)))
            last += 1
        grid_w, grid_h = math.ceil(width / strides[layer]), math.ceil(height / strides[layer])
        for y in range(grid_h):
            for x in range(grid_w):
                for ratio, scale in shapes:
                    size = (1.0, 1.0) if options.fixed_anchor_size else (scale * math.sqrt(ratio),
                                                                          scale / math.sqrt(ratio))
                    anchors.append(((x + options.offset) / grid_w, (y + options.offset) / grid_h, *size))
        layer = last
    return np.asarray(anchors, np.float64)


class SsdDecoder(Decoder):
    name = "ssd"
    task = "detect"
    natural_order = True

    @classmethod
    def fits(cls, outputs: list[OutputSpec]) -> bool:
        """Regressors and scores: two outputs of rank 3."""
        return len(outputs) == 2 and all(len(o.shape) == 3 for o in outputs)

    def check(self) -> None:
        width, height = self.input_size
        self.anchors = ssd_anchors(self.settings.anchors, width, height)
        count = len(self.anchors)
        shapes = [spec.shape for spec in self.outputs]
        fits = (len(shapes) == 2 and all(len(s) == 3 for s in shapes)
                and all(s[1] in (count, None) for s in shapes)  # None: a size the model leaves open
                and shapes[0][2] is not None and shapes[0][2] >= 4 and shapes[0][2] % 2 == 0)
        if not fits:
            got = ", ".join(shape_text(s) for s in shapes)
            raise ConfigError(f"the ssd decoder takes regressors (N, {count}, 4 + 2k) and scores (N, {count}, "
                              f"classes) for the {count} anchors of [task.anchors] at {width}x{height}; this model "
                              f"gives {got}; set [task.anchors] (strides, aspect_ratios) to match the model")
        threshold = self.settings.score_threshold
        self._logit_floor = -np.inf if threshold <= 0 else np.log(threshold / (1 - threshold)) if threshold < 1 \
            else np.inf
        size = np.asarray([width, height], np.float64)
        self._scale = self.anchors[:, np.newaxis, 2:4].copy()  # (A, 1, 2): anchor width, height (fractions)
        self._centre = self.anchors[:, np.newaxis, 0:2] * size  # (A, 1, 2): anchor centre, input pixels
        classes = shapes[1][2]
        if self.labels and classes is not None and len(self.labels) != classes:
            raise ConfigError(f"the model scores {classes} classes, the labels name {len(self.labels)}; give "
                              f"task.labels with one name per class")

    def decode(self, tensors: list[np.ndarray], geometry: Geometry) -> dict:
        raw, logits = tensors[0][0], tensors[1][0]  # (A, R), (A, C)
        if len(raw) != len(self.anchors) or len(logits) != len(self.anchors):
            raise FrameError(f"the model gave {len(raw)} regressors and {len(logits)} scores for the "
                              f"{len(self.anchors)} anchors of [task.anchors]; set them to match the model")
        if logits.shape[1] == 1:  # one class (faces): no argmax
            best = logits[:, 0]
            keep = np.flatnonzero(best >= self._logit_floor)  # the sigmoid is monotone: threshold the logits
            classes = np.zeros(len(keep), np.int64)
        else:
            every = logits.argmax(axis=1)
            best = logits[np.arange(len(logits)), every]
            keep = np.flatnonzero(best >= self._logit_floor)
            classes = every[keep]
        if len(keep) == 0:  # most frames of a quiet scene: nothing to decode
            return answer([], self.settings.classes)
        scores = 1.0 / (1.0 + np.exp(-np.clip(best[keep].astype(np.float64), -100.0, 100.0)))
        count, values = len(keep), raw.shape[1]
        pairs = raw[keep].astype(np.float64).reshape(count, values // 2, 2)  # (K, R) -> (K, R/2, 2): x, y pairs
        if self.settings.box_order == "yxhw":
            pairs[:, :2] = pairs[:, :2, ::-1].copy()
        scale, centre = self._scale[keep], self._centre[keep]  # (K, 1, 2) each: anchor size, centre in pixels
        points = pairs * scale + centre  # (K, R/2, 2): the box's centre (pair 0) and keypoints (from pair 2)
        half = pairs[:, 1] * scale[:, 0] / 2  # (K, 2): half the box's width and height
        corners = np.concatenate([points[:, 0] - half, points[:, 0] + half], axis=1)  # (K, 4) input pixels
        boxes = geometry.to_camera(corners)
        chosen = suppress(boxes, scores, classes, self.settings.score_threshold, self.settings.iou_threshold,
                          self.settings.max_detections)
        boxes = geometry.clip(boxes[chosen])
        keypoints = np.round(geometry.to_camera(points[chosen, 2:].reshape(len(chosen), -1)), 2)  # (K', 2k)
        found = []
        for row, i in enumerate(chosen):
            extra = {"keypoints": keypoints[row].reshape(-1, 2).tolist()} if keypoints.shape[1] else None
            found.append(detection(boxes[row], scores[i], classes[i], self.label(int(classes[i])), extra))
        return answer(found, self.settings.classes)
