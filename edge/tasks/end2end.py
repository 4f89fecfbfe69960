"""End-to-end detections: YOLOv10 and YOLO26 one-to-one heads, chosen by the model, no NMS.

One output ``(N, rows, 6)``: rows of x0, y0, x1, y1 in the model's input pixels, the score and the class
index, best first (the graph's top-k over the one-to-one head; ``export(nms=False)`` in ultralytics 8.4).
As ultralytics' predict does for these models, a row is kept when its score is at least the threshold,
at most ``max_detections`` rows, in the model's order; nothing is suppressed. Boxes go to the camera
frame's pixels through the frame's geometry and are clipped to what the model saw.

RT-DETR's export has the same shape with other numbers in it (cx, cy, w, h as fractions of the input:
``edge.tasks.rtdetr``), and the manifest does not say which head wrote it. A frame whose kept rows all
lie inside [0, 1] (no real box of a model of more than two pixels does) is refused as RT-DETR's, in one
line that says to set ``[task] decoder = "rtdetr"``: never silently decoded as pixels.
"""

from __future__ import annotations

import numpy as np

from edge.errors import ConfigError, FrameError
from edge.tasks.base import Decoder
from edge.tasks.geometry import Geometry
from edge.tasks.heads import END2END_VALUES, Layout, layout_of, read
from edge.tasks.nms import detection
from edge.tasks.yolo import answer
from firmware_sim.manifest import OutputSpec, shape_text


class EndToEndDecoder(Decoder):
    name = "end2end"
    task = "detect"

    @classmethod
    def fits(cls, outputs: list[OutputSpec]) -> bool:
        """One output of rows of six values: (N, rows, 6)."""
        return (len(outputs) == 1 and layout_of(outputs[0].shape) == "end2end"
                and outputs[0].shape[2] == END2END_VALUES)

    def check(self) -> None:
        if not self.fits(self.outputs):
            got = ", ".join(shape_text(spec.shape) for spec in self.outputs)
            raise ConfigError(f"the end2end decoder takes one output (N, rows, 6): x0, y0, x1, y1, score, class "
                              f"(YOLOv10, YOLO26 exported with nms=False); this model gives {got}; set [task] "
                              f"decoder or kind to match the model")
        self.layout = Layout("end2end", None, 0)

    def decode(self, tensors: list[np.ndarray], geometry: Geometry) -> dict:
        settings = self.settings
        found = read(tensors[0], self.layout, settings.score_threshold, settings.max_detections)
        if len(found) == 0:
            return answer([], settings.classes)
        if min(self.input_size) > 2 and found.boxes.min() >= 0 and found.boxes.max() <= 1:
            raise FrameError("the model's end-to-end rows hold boxes inside [0, 1], as RT-DETR's normalised cx, "
                             "cy, w, h, not pixels; set [task] decoder = \"rtdetr\" for an RT-DETR model")
        boxes = geometry.clip(geometry.to_camera(found.boxes))  # (K, 4) camera pixels
        items = [detection(boxes[i], found.scores[i], found.classes[i], self.label(int(found.classes[i])))
                 for i in range(len(found))]
        return answer(items, settings.classes)
