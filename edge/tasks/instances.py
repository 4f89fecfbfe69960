"""Instance segmentation: YOLO segment heads (YOLOv8-seg, YOLO11-seg, YOLO26-seg), a box and a mask per object.

Two outputs: the head, in either layout of ``edge.tasks.heads`` (anchors ``(N, 4 + classes + M, A)`` or
end-to-end ``(N, rows, 6 + M)``), whose extra values are M mask coefficients per candidate; and the
prototypes ``(N, M, Hp, Wp)`` (a dense map, Hp x Wp = H/4 x W/4 of the model's input). Detections are
chosen as for boxes (class-wise NMS by OpenCV, or the end-to-end rows); each kept detection's mask is
ultralytics' ``process_mask`` (its default, not ``retina_masks``), in float32 as ultralytics computes it::

    logits = coefficients (M,) . prototypes (M, Hp, Wp)                  # (Hp, Wp)
    up     = bilinear resize of logits to the model's H x W: half-pixel centres, edges clamped (OpenCV's
             INTER_LINEAR on float32, which is torch's interpolate(bilinear, align_corners=False))
    mask   = up > 0 (sigmoid > 0.5), inside the box: x0 <= column < x1, y0 <= row < y1 (input pixels)

kept only over the part of the input that shows the camera frame (not a letterbox's padding, which
ultralytics' ``scale_masks`` cuts away). A detection whose mask is empty there is dropped, as
ultralytics drops it. The mask is answered in the camera frame's pixels, through the frame's geometry,
as its outlines (``polygons``: OpenCV's contours, outer boundaries and holes alike, traced on the mask
upsampled 4 times so that they pass within 1/8 of a pixel of its edge, simplified to within half a
pixel, largest first, at most 64; filled together with the even-odd rule, as ``cv2.fillPoly`` fills
them, they give the mask) and its area (``pixels``: mask pixels times the camera area of one input
pixel).

The prototypes are a dense map: a keyed model leaves them scrambled (under ``fresh``; under ``boundary``
too when the model keeps them in a keyed layout), so the answer stage restores them with the key first
(``natural_order``: key holders only, which the device is). The head output's boxes are plain pixels
in any order, as for ``yolo``.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.errors import ConfigError, FrameError
from edge.tasks.base import Decoder
from edge.tasks.geometry import Geometry
from edge.tasks.heads import END2END_VALUES, Layout, layout_of, read
from edge.tasks.nms import detection, suppress
from edge.tasks.yolo import answer
from firmware_sim.manifest import OutputSpec, shape_text

MAX_POLYGONS = 64  # outlines per detection, the largest first
SUBPIXELS = 4  # outlines are traced on the mask upsampled this many times


def _pair(shapes: list[list[int | None]]) -> tuple[int, int] | None:
    """(head index, prototypes index): one output of rank 3 and one of rank 4, in either order."""
    ranks = [len(s) for s in shapes]
    if sorted(ranks) != [3, 4]:
        return None
    return ranks.index(3), ranks.index(4)


class InstancesDecoder(Decoder):
    name = "instances"
    task = "segment"
    natural_order = True

    @classmethod
    def fits(cls, outputs: list[OutputSpec]) -> bool:
        """A head output (rank 3) and prototypes (rank 4)."""
        return _pair([o.shape for o in outputs]) is not None

    def check(self) -> None:
        shapes = [spec.shape for spec in self.outputs]
        pair = _pair(shapes)
        head, protos = (shapes[pair[0]], shapes[pair[1]]) if pair else (None, None)
        kind = layout_of(head) if head else None
        coefficients = protos[1] if protos else None
        values = None if kind is None else head[1] if kind == "anchors" else head[2]
        before = None if values is None or coefficients is None else (
            values - coefficients if kind == "anchors" else END2END_VALUES)
        wrong = before is None or (before <= 4 if kind == "anchors" else values != before + coefficients)
        if wrong:
            raise ConfigError(f"the instances decoder takes a head (N, 4 + classes + M, anchors) or (N, rows, 6 + M) "
                              f"and prototypes (N, M, H/4, W/4); this model gives "
                              f"{', '.join(shape_text(s) for s in shapes)}; set [task] decoder or kind to match")
        classes = before - 4 if kind == "anchors" else None
        if classes is not None and self.labels and len(self.labels) != classes:
            raise ConfigError(f"the segment model's output {shape_text(head)} scores {classes} classes (and {coefficients}"
                              f" mask coefficients), the labels name {len(self.labels)}; give task.labels with one "
                              f"name per class")
        self.head, self.protos = pair
        self.layout = Layout(kind, classes, coefficients)

    def decode(self, tensors: list[np.ndarray], geometry: Geometry) -> dict:
        settings = self.settings
        protos = tensors[self.protos][0]  # (M, Hp, Wp)
        if protos.shape[0] != self.layout.extra:
            raise FrameError(f"the model gave {protos.shape[0]} prototypes for {self.layout.extra} mask "
                             f"coefficients; the frame cannot be decoded")
        found = read(tensors[self.head], self.layout, settings.score_threshold, settings.max_detections)
        if len(found) == 0:
            return answer([], settings.classes)
        boxes = geometry.to_camera(found.boxes)  # (K, 4) camera pixels
        chosen = np.arange(len(found)) if found.chosen else suppress(
            boxes, found.scores, found.classes, settings.score_threshold, settings.iou_threshold,
            settings.max_detections)
        count, height, width = protos.shape
        coefficients = found.extra[chosen].astype(np.float32)  # (K', M): float32, as ultralytics computes masks
        logits = coefficients @ protos.reshape(count, height * width).astype(np.float32)  # (K', Hp*Wp)
        logits = logits.reshape(len(chosen), height, width)  # (K', Hp*Wp) -> (K', Hp, Wp)
        clipped = geometry.clip(boxes[chosen])
        one = geometry.to_camera(np.array([[0.0, 0.0, 1.0, 1.0]]))[0]
        pixel_area = float((one[2] - one[0]) * (one[3] - one[1]))  # camera pixels per input pixel
        window = geometry.clip(np.array([[-np.inf, -np.inf, np.inf, np.inf]]))  # (1, 4): what the model sees
        seen = np.round(geometry.to_model(window)[0], 6)  # the picture's part of the input, input pixels
        items = []
        for row, i in enumerate(chosen):
            within = np.concatenate([np.maximum(found.boxes[i, :2], seen[:2]), np.minimum(found.boxes[i, 2:], seen[2:])])
            mask = self._mask(logits[row], within, geometry, pixel_area)
            if mask is not None:
                items.append(detection(clipped[row], found.scores[i], found.classes[i],
                                       self.label(int(found.classes[i])), {"mask": mask}))
        return answer(items, settings.classes)

    def _mask(self, logits: np.ndarray, box: np.ndarray, geometry: Geometry, pixel_area: float) -> dict | None:
        """One detection's mask inside ``box`` (input pixels: the box, within the part of the input that shows the
        camera frame): ``{"pixels": camera pixels, "polygons": [[[x, y], ...], ...]}``, or None if it is empty."""
        model_w, model_h = self.input_size
        x0, y0, x1, y1 = (int(np.clip(np.ceil(v), 0, limit)) for v, limit in zip(box, (model_w, model_h) * 2))
        if x1 <= x0 or y1 <= y0:
            return None
        up = cv2.resize(logits, (model_w, model_h), interpolation=cv2.INTER_LINEAR)  # (Hp, Wp) -> (H, W)
        mask = (up[y0:y1, x0:x1] > 0).astype(np.uint8)  # (h, w): the box's input pixels
        pixels = int(mask.sum())
        if pixels == 0:
            return None
        return {"pixels": round(pixels * pixel_area, 2), "polygons": outlines(mask, (x0, y0), geometry)}


def outlines(mask: np.ndarray, origin: tuple[int, int], geometry: Geometry) -> list:
    """The outlines of ``mask`` (h, w) uint8, whose pixel (0, 0) is the input's ``origin``, in camera pixels.

    OpenCV's contours pass through the centres of the edge pixels, half a pixel inside the mask's edge; traced on
    the mask upsampled SUBPIXELS times (nearest), they pass 0.5 / SUBPIXELS inside it."""
    fine = cv2.resize(mask, (mask.shape[1] * SUBPIXELS, mask.shape[0] * SUBPIXELS), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(fine, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)  # boundaries and holes
    if not contours:
        return []
    rings = [cv2.approxPolyDP(contour, SUBPIXELS / 2, True).reshape(-1, 2)  # (P_i, 2): within half an input pixel
             for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:MAX_POLYGONS]]
    where = (np.concatenate(rings) + 0.5) / SUBPIXELS + origin  # (P, 2) sub-pixel centres, in input pixels
    camera = geometry.to_camera(where.reshape(1, -1)).reshape(-1, 2)  # (1, 2P) -> (P, 2)
    camera = np.round(geometry.clip(np.concatenate([camera, camera], axis=1))[:, :2], 2)  # as (x, y, x, y) boxes
    return [ring.tolist() for ring in np.split(camera, np.cumsum([len(r) for r in rings])[:-1])]
