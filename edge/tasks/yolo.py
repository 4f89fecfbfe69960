"""YOLO-style detections: one output (N, 4 + classes, anchors), boxes decoded inside the model.

Each of the A anchors holds ``cx, cy, w, h`` in the model's input pixels, then one score per class
(ultralytics' YOLOv8 export, after its in-graph box decode and sigmoid). A box's score is its best
class's; boxes above ``score_threshold`` go through class-wise NMS (``edge.tasks.nms``) and are mapped
to the camera frame. Under the ``fresh`` policy the anchors come in a keyed order but each box is in
plain pixels, so NMS finds the same detections without restoring anything (``natural_order`` False).
"""

from __future__ import annotations

import numpy as np

from edge.errors import ConfigError
from edge.tasks.base import Decoder
from edge.tasks.geometry import Geometry
from edge.tasks.heads import layout_of
from edge.tasks.nms import detection, suppress
from firmware_sim.manifest import OutputSpec, shape_text


class YoloDecoder(Decoder):
    name = "yolo"
    task = "detect"

    @classmethod
    def fits(cls, outputs: list[OutputSpec]) -> bool:
        """One output (N, 4 + classes, anchors): fewer channels than anchors (``edge.tasks.heads``)."""
        return len(outputs) == 1 and layout_of(outputs[0].shape) == "anchors"

    def check(self) -> None:
        shapes = [spec.shape for spec in self.outputs]
        shape = shapes[0] if len(shapes) == 1 else None
        fits = shape is not None and len(shape) == 3 and shape[1] is not None and shape[1] > 4
        if fits and shape[2] is not None:
            fits = shape[2] > shape[1]
        if not fits:
            got = ", ".join(shape_text(s) for s in shapes)
            raise ConfigError(f"the yolo decoder takes one output (N, 4 + classes, anchors); this model gives {got}; "
                              f"set [task] decoder or kind to match the model")
        classes = shape[1] - 4
        if self.labels and len(self.labels) != classes:
            raise ConfigError(f"the model's output (N, 4 + {classes}, anchors) scores {classes} classes, the labels "
                              f"name {len(self.labels)}; give task.labels with one name per class")

    def decode(self, tensors: list[np.ndarray], geometry: Geometry) -> dict:
        out = tensors[0][0]  # (4 + classes, A)
        scores_all = out[4:]  # (classes, A)
        best = scores_all.max(axis=0)  # (A,): a reduction along the contiguous rows, no transpose
        keep = np.flatnonzero(best >= self.settings.score_threshold)
        if len(keep) == 0:
            return answer([], self.settings.classes)
        classes, scores = scores_all[:, keep].argmax(axis=0), best[keep]  # (K,) each; ties: the first class
        cx, cy, w, h = out[:4, keep]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)  # (K, 4) input pixels
        boxes = geometry.to_camera(boxes)
        chosen = suppress(boxes, scores, classes, self.settings.score_threshold,
                          self.settings.iou_threshold, self.settings.max_detections)
        boxes = geometry.clip(boxes)
        found = [detection(boxes[i], scores[i], classes[i], self.label(int(classes[i])))
                 for i in chosen]
        return answer(found, self.settings.classes)


def answer(found: list[dict], only: list[str]) -> dict:
    """The frame's detections (those of ``only`` when given) and the count per class."""
    if only:
        found = [d for d in found if d["class"] in only]
    counts: dict[str, int] = {}
    for item in found:
        counts[item["class"]] = counts.get(item["class"], 0) + 1
    return {"detections": found, "counts": dict(sorted(counts.items()))}
