"""Pose: YOLO pose heads (YOLOv8, YOLO11, YOLO26), a box and K keypoints per person.

One output, in either layout of ``edge.tasks.heads``: anchors ``(N, 4 + classes + K*D, A)`` or
end-to-end ``(N, rows, 6 + K*D)``. A candidate's extra values are its K keypoints, D values each
(ultralytics' ``kpt_shape`` [K, D]): x, y in the model's input pixels (decoded in the graph:
``(2 t + anchor - 0.5) * stride``) and, with D = 3, the visibility (sigmoid, in the graph)::

    keypoint k = extra[k*D : k*D + D] = (x, y[, visibility])

Anchors: best class, threshold, class-wise NMS (OpenCV) as for detections; end-to-end rows are the
model's choice. Boxes and keypoints go to the camera frame's pixels through the frame's geometry and
are clipped to what the model saw (ultralytics clips both to the image).

The keypoints' shape [K, D]: ``[task] kpt_shape`` when given, else from the channel count: the values
after the box and the class scores (classes: the labels' count, else 1, ultralytics' person) are taken
as 3 per keypoint (x, y, visibility: COCO's 17 x 3, hands' 21 x 3, dogs' 24 x 3). A count that is not
a multiple of 3 is refused until ``kpt_shape`` says; a [K, 2] model whose 2K is a multiple of 3
(tiger-pose's 12 x 2 = 24) cannot be told from 2K/3 keypoints of 3 and needs ``kpt_shape``. Ultralytics
writes ``kpt_shape`` in the model's metadata; the manifest does not carry it yet.
"""

from __future__ import annotations

import numpy as np

from edge.errors import ConfigError
from edge.tasks.base import Decoder
from edge.tasks.geometry import Geometry
from edge.tasks.heads import END2END_VALUES, Layout, layout_of, points, read
from edge.tasks.nms import detection, suppress
from edge.tasks.yolo import answer
from firmware_sim.manifest import OutputSpec, shape_text


class PoseDecoder(Decoder):
    name = "pose"
    task = "pose"

    @classmethod
    def fits(cls, outputs: list[OutputSpec]) -> bool:
        """One head output, anchors or end-to-end."""
        return len(outputs) == 1 and layout_of(outputs[0].shape) is not None

    def check(self) -> None:
        shapes = [spec.shape for spec in self.outputs]
        kind = layout_of(shapes[0]) if len(shapes) == 1 else None
        values = None if kind is None else shapes[0][1] if kind == "anchors" else shapes[0][2]
        if values is None:
            raise ConfigError(f"the pose decoder takes one output (N, 4 + classes + K*D, anchors) or (N, rows, "
                              f"6 + K*D); this model gives {', '.join(shape_text(s) for s in shapes)}; set [task] "
                              f"decoder or kind to match the model")
        before = 4 + self._classes(values) if kind == "anchors" else END2END_VALUES
        self.kpt_shape = self._keypoints(values - before, shape_text(shapes[0]))
        classes = before - 4 if kind == "anchors" else None
        if classes is not None and classes < 1:
            raise ConfigError(f"task.kpt_shape = {self.settings.kpt_shape} leaves no class scores in the pose "
                              f"model's output {shape_text(shapes[0])}; set task.kpt_shape to the model's")
        if classes is not None and self.labels and len(self.labels) != classes:
            raise ConfigError(f"the pose model's output {shape_text(shapes[0])} scores {classes} classes with "
                              f"keypoints {self.kpt_shape}, the labels name {len(self.labels)}; give task.labels "
                              f"with one name per class, or task.kpt_shape")
        self.layout = Layout(kind, classes, values - before)

    def _classes(self, values: int) -> int:
        """The class count of an anchors output: from kpt_shape when given, else the labels' count (or 1)."""
        if self.settings.kpt_shape:
            count, dims = self.settings.kpt_shape
            return values - 4 - count * dims
        return len(self.labels) or 1

    def _keypoints(self, extra: int, shape: str) -> tuple[int, int]:
        if self.settings.kpt_shape:
            count, dims = self.settings.kpt_shape
            if extra != count * dims or extra <= 0:
                raise ConfigError(f"task.kpt_shape = {[count, dims]} needs {count * dims} keypoint values per "
                                  f"detection, and the model's output {shape} leaves {extra}; set task.kpt_shape "
                                  f"to the model's (ultralytics' kpt_shape metadata)")
            return count, dims
        if extra <= 0 or extra % 3:
            raise ConfigError(f"the pose model's output {shape} leaves {extra} values per detection for keypoints, "
                              f"not 3 per keypoint; set task.kpt_shape = [K, D] (the model's kpt_shape metadata) "
                              f"and task.labels")
        return extra // 3, 3

    def decode(self, tensors: list[np.ndarray], geometry: Geometry) -> dict:
        settings = self.settings
        found = read(tensors[0], self.layout, settings.score_threshold, settings.max_detections)
        if len(found) == 0:
            return answer([], settings.classes)
        boxes = geometry.to_camera(found.boxes)  # (K, 4) camera pixels
        chosen = np.arange(len(found)) if found.chosen else suppress(
            boxes, found.scores, found.classes, settings.score_threshold, settings.iou_threshold,
            settings.max_detections)
        count, dims = self.kpt_shape
        keypoints = found.extra[chosen].reshape(len(chosen), count, dims)  # (K', K*D) -> (K', K, D)
        where = np.round(points(keypoints[:, :, :2], geometry), 2)  # (K', K, 2) camera pixels
        boxes = geometry.clip(boxes[chosen])
        items = []
        for row, i in enumerate(chosen):
            joints = where[row].tolist() if dims == 2 else [
                [x, y, round(float(v), 6)] for (x, y), v in zip(where[row].tolist(), keypoints[row, :, 2])]
            items.append(detection(boxes[row], found.scores[i], found.classes[i], self.label(int(found.classes[i])),
                                   {"keypoints": joints}))
        return answer(items, settings.classes)
