"""A frame's answer in the pixels of the picture the page shows: the answer without the picture.

The answers are in camera pixels (``edge.tasks.geometry``); the streamed picture is the measurement, at the
model's input size. A point goes camera -> model input (the run's framing, ``Answers.geometry``) -> the
picture. Drawn over the noise: each detection's box, label, score and track id (``track``, with ``[events]``),
rotated corners and keypoints where the decoder gives them; the zones (``[zones.NAME]``, from the run's
tracking stage) and the privacy masks (``[readout] masks``, once the run is attached to the page) as outlines.
The picture's positions are scrambled, so a box marks where the answer is in the camera frame, not a region
of the noise (as ``keycam preview`` draws it).
"""

from __future__ import annotations

import numpy as np

CAPTION_CHARS = 160


def caption(outputs: dict) -> str:
    """One line for answers that are not boxes (classifiers, class maps) or a count of the boxes."""
    if "counts" in outputs and isinstance(outputs["counts"], dict):
        text = ", ".join(f"{n} {name}" for name, n in outputs["counts"].items()) or "nothing found"
    elif isinstance(outputs.get("classes"), dict):
        areas = sorted(outputs["classes"].items(), key=lambda item: -item[1].get("area", 0))
        text = ", ".join(f"{name} {value.get('area', 0):.0%}" for name, value in areas[:5])
    else:
        text = "; ".join(f"{name}: {value.get('class', value.get('label'))}"
                         + (f" {value['score']:.2f}" if isinstance(value.get("score"), (int, float)) else "")
                         for name, value in outputs.items() if isinstance(value, dict)
                         and ("class" in value or "label" in value))
    return text[:CAPTION_CHARS]


class Overlay:
    """``overlay(result, width, height)``: the answer of ``result`` for a picture of that size, as JSON-ready data."""

    def __init__(self, sink) -> None:
        self.sink = sink
        self._mapped: dict[tuple, tuple] = {}  # (source size, picture size) -> (geometry, scale, zones, masks)

    def _geometry(self, frame, width: int, height: int) -> tuple:
        key = (frame.source_size, width, height, id(self.sink.run))
        if key not in self._mapped:
            answers = self.sink.context.answers
            geometry = answers.geometry(frame) if answers is not None else None
            scale = (width / geometry.width, height / geometry.height) if geometry is not None else (1.0, 1.0)
            tracking = self.sink.context.tracking
            zones = [(zone.name, zone.coordinates) for zone in getattr(tracking, "zones", None) or []]
            masks = getattr(getattr(self.sink.run, "readout", None), "masks", None)
            rings = list(masks.polygons) if masks is not None else []
            outlines = ([{"name": name, "points": self._points(ring, geometry, scale)} for name, ring in zones],
                        [self._points(ring, geometry, scale) for ring in rings])
            self._mapped = {key: (geometry, scale, *outlines)}  # one size at a time: a run's rarely changes
        return self._mapped[key]

    @staticmethod
    def _points(points, geometry, scale) -> list:
        """(k, 2) camera pixels -> [[x, y], ...] in the picture's pixels."""
        pairs = np.asarray(points, np.float64).reshape(1, -1)  # (k, 2) -> (1, 2k)
        model = geometry.to_model(pairs).reshape(-1, 2) if geometry is not None else pairs.reshape(-1, 2)
        return np.round(model * scale, 1).tolist()

    def _item(self, detection: dict, geometry, scale) -> dict:
        box = self._points(np.asarray(detection["box"], np.float64).reshape(2, 2), geometry, scale)
        item = {"box": box[0] + box[1], "label": str(detection.get("class", detection.get("label", "?"))),
                "score": detection.get("score"), "track": detection.get("track")}
        if detection.get("corners"):
            item["corners"] = self._points(detection["corners"], geometry, scale)
        points = detection.get("keypoints") or []
        visible = [p[:2] for p in points if len(p) < 3 or p[2] >= 0.5]
        if visible:
            item["keypoints"] = self._points(visible, geometry, scale)
        return item

    def __call__(self, result, width: int, height: int) -> dict:
        frame = result.frame
        geometry, scale, zones, masks = self._geometry(frame, width, height)
        outputs = result.outputs if isinstance(result.outputs, dict) else {}
        found = outputs.get("detections")
        items = [self._item(d, geometry, scale) for d in found if isinstance(d, dict) and "box" in d] \
            if isinstance(found, list) else []
        return {"sequence": frame.sequence, "timestamp_ns": frame.timestamp_ns, "epoch": frame.epoch,
                "fingerprint": frame.fingerprint, "width": width, "height": height, "items": items,
                "caption": caption(outputs), "zones": zones, "masks": masks, "error": result.error}
