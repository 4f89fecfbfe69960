"""RT-DETR detections: a fixed number of queries, each a box and scores, chosen by the model, no NMS.

One output ``(N, queries, V)``, in one of two forms:

- ``V = 6`` (ultralytics 8.4's export: the top-k inside the graph): cx, cy, w, h as fractions of the
  model's input, the score and the class index, best first;
- ``V = 4 + classes`` (earlier exports): cx, cy, w, h as fractions, then one score per class (sigmoid);
  a query's score is its best class's.

As ultralytics' RT-DETR postprocess does, a query is kept when its score is at least the threshold, at
most ``max_detections`` of them, best first; nothing is suppressed. A box is
``(cx - w/2, cy - h/2, cx + w/2, cy + h/2) * (W, H)`` in the model's input pixels, then goes to the
camera frame's pixels through the frame's geometry (RT-DETR is trained on stretched frames: its
manifest's framing should be ``stretch``), clipped to what the model saw (ultralytics leaves RT-DETR's
boxes unclipped).

The first form has the shape of the YOLOv10/YOLO26 end-to-end output, and the manifest does not say
which head wrote it: ``decoder = "auto"`` takes only the second form here, and the first needs
``[task] decoder = "rtdetr"`` (``edge.tasks.end2end`` refuses its frames in one line that says so).
"""

from __future__ import annotations

import numpy as np

from edge.errors import ConfigError, FrameError
from edge.tasks.base import Decoder
from edge.tasks.geometry import Geometry
from edge.tasks.heads import END2END_VALUES
from edge.tasks.nms import detection
from edge.tasks.yolo import answer
from firmware_sim.manifest import OutputSpec, shape_text


def _queries(shape: list[int | None]) -> bool:
    """(N, queries, V): more queries than values, at least a box and a score."""
    return (len(shape) == 3 and shape[2] is not None and shape[2] >= 5
            and (shape[1] is None or shape[1] > shape[2]))


class RtdetrDecoder(Decoder):
    name = "rtdetr"
    task = "detect"

    @classmethod
    def fits(cls, outputs: list[OutputSpec]) -> bool:
        """One output (N, queries, 4 + classes); (N, queries, 6) only when named (see the module's notes)."""
        return len(outputs) == 1 and _queries(outputs[0].shape) and outputs[0].shape[2] != END2END_VALUES

    def check(self) -> None:
        shapes = [spec.shape for spec in self.outputs]
        if len(shapes) != 1 or not _queries(shapes[0]):
            raise ConfigError(f"the rtdetr decoder takes one output (N, queries, 6) or (N, queries, 4 + classes); "
                              f"this model gives {', '.join(shape_text(s) for s in shapes)}; set [task] decoder or "
                              f"kind to match the model")
        values = shapes[0][2]
        self.scored = values == END2END_VALUES  # score and class index (8.4), else one score per class
        if not self.scored and self.labels and len(self.labels) != values - 4:
            raise ConfigError(f"the model's output {shape_text(shapes[0])} scores {values - 4} classes, the labels "
                              f"name {len(self.labels)}; give task.labels with one name per class")

    def decode(self, tensors: list[np.ndarray], geometry: Geometry) -> dict:
        settings = self.settings
        rows = tensors[0][0]  # (Q, V)
        if self.scored:
            scores, classes = rows[:, 4], rows[:, 5]  # (Q,) each, best first
        else:
            classes = rows[:, 4:].argmax(axis=1)  # (Q,): ties, the first class
            scores = rows[np.arange(len(rows)), 4 + classes]
        keep = np.flatnonzero(scores >= settings.score_threshold)
        keep = keep[np.argsort(-scores[keep], kind="stable")][:settings.max_detections]  # best first
        if len(keep) == 0:
            return answer([], settings.classes)
        width, height = self.input_size
        box = rows[keep, :4].astype(np.float64) * (width, height, width, height)  # (K, 4) cx, cy, w, h in pixels
        corners = np.concatenate([box[:, :2] - box[:, 2:] / 2, box[:, :2] + box[:, 2:] / 2], axis=1)  # (K, 4)
        labels = np.rint(classes[keep].astype(np.float64))
        if not (np.all(np.isfinite(corners)) and np.all(np.isfinite(labels)) and labels.min() >= 0):
            raise FrameError("the model's RT-DETR queries give boxes or classes that are not finite or not class "
                             "indices; the frame cannot be decoded")
        boxes = geometry.clip(geometry.to_camera(corners))
        items = [detection(boxes[row], scores[i], int(labels[row]), self.label(int(labels[row])))
                 for row, i in enumerate(keep)]
        return answer(items, settings.classes)
