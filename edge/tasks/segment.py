"""Segmentation: a dense class map (N, C, H, W) per frame, put back in order, as areas and outlines.

The map's pixels are the model's (a segmentation network's output grid, often the input's size or a
fraction of it); under either policy a keyed model's dense output is scrambled, so the pipeline first
restores it with the key (``natural_order``: key holders only, which the device is). Each pixel takes
its highest-scoring class; per class the answer gives the pixel count, the fraction of the frame, and
the outer contours (OpenCV, simplified to within one pixel), in the camera frame's pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.errors import ConfigError
from edge.tasks.base import Decoder
from edge.tasks.geometry import Geometry
from firmware_sim.manifest import OutputSpec, shape_text

MAX_CONTOURS = 20  # per class and frame, the largest first


class SegmentDecoder(Decoder):
    name = "segment"
    task = "segment"
    natural_order = True

    @classmethod
    def fits(cls, outputs: list[OutputSpec]) -> bool:
        """One output, a class map (N, classes, H, W) (two outputs, a head and prototypes: ``instances``)."""
        return len(outputs) == 1 and len(outputs[0].shape) == 4

    def check(self) -> None:
        shapes = [spec.shape for spec in self.outputs]
        if not shapes or len(shapes[0]) != 4 or shapes[0][1] is None:
            raise ConfigError(f"the segment decoder takes a class map (N, classes, H, W) first; this model gives "
                              f"{', '.join(shape_text(s) for s in shapes)}")

    def decode(self, tensors: list[np.ndarray], geometry: Geometry) -> dict:
        scores = tensors[0][0]  # (C, H, W)
        classes, height, width = scores.shape
        winner = scores.argmax(axis=0).astype(np.uint8 if classes < 256 else np.uint16)  # (H, W)
        grid = geometry.for_grid(width, height)  # the map's pixels onto the same camera window
        found = {}
        for index in np.unique(winner):
            name = self.label(int(index))
            if self.settings.classes and name not in self.settings.classes:
                continue
            mask = (winner == index).astype(np.uint8)
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            contours = sorted(contours, key=cv2.contourArea, reverse=True)[:MAX_CONTOURS]
            outlines = []
            for contour in contours:
                simple = cv2.approxPolyDP(contour, 1.0, True).reshape(-1, 2).astype(np.float64) + 0.5  # centres
                points = grid.to_camera(simple.reshape(1, -1)).reshape(-1, 2)
                outlines.append([[round(float(x), 1), round(float(y), 1)] for x, y in points])
            pixels = int(mask.sum())
            found[name] = {"label": int(index), "pixels": pixels, "area": round(pixels / (height * width), 6),
                           "contours": outlines}
        return {"classes": dict(sorted(found.items(), key=lambda item: item[1]["label"]))}
