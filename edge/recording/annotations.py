"""A frame's answer drawn over its measurement: ``foxglove.ImageAnnotations`` in the measurement image's pixels.

Answers are in camera pixels (docs/tasks.md); the measurement is the model's input, W x H positions, shown as an
image by ``edge.recording.images`` (``Layout.scale`` image pixels a position). A point goes camera -> model by the
frame's geometry (the fitting rule, ``edge.tasks.geometry``: ``m = c * scale + offset``), then model -> image by
the layout's scale. Drawn: each detection's box (a closed polygon in its class's colour) with its class, score
and track id as text, its keypoints (points), its rotated corners (a polygon, in place of the box) and its
instance mask's outlines; a segmenter's class contours. The measurement under them is noise: where the boxes fall
is where the objects are in the plain frame the key holder could restore, which is what the answer says and no
more.
"""

from __future__ import annotations

from foxglove_schemas_protobuf.Color_pb2 import Color
from foxglove_schemas_protobuf.ImageAnnotations_pb2 import ImageAnnotations
from foxglove_schemas_protobuf.KeyValuePair_pb2 import KeyValuePair
from foxglove_schemas_protobuf.Point2_pb2 import Point2
from foxglove_schemas_protobuf.PointsAnnotation_pb2 import PointsAnnotation
from foxglove_schemas_protobuf.TextAnnotation_pb2 import TextAnnotation

from edge.recording.images import timestamp
from edge.tasks.geometry import Geometry

# Ten colours that stay apart on noise (Tableau 10), r, g, b in 0..1; a class takes its label's.
PALETTE = ((0.12, 0.47, 0.71), (1.0, 0.5, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16), (0.58, 0.4, 0.74),
           (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.5, 0.5, 0.5), (0.74, 0.74, 0.13), (0.09, 0.75, 0.81))
MAX_OUTLINES = 8  # an instance mask's or a class's outlines drawn, largest first
VISIBLE = 0.5  # a keypoint with a visibility below this is not drawn (ultralytics' plotting threshold)


class Canvas:
    """Camera pixels -> the measurement image's pixels, for one frame."""

    def __init__(self, geometry: Geometry, scale: tuple[int, int], timestamp_ns: int) -> None:
        self.geometry, self.scale, self.stamp = geometry, scale, timestamp(timestamp_ns)
        self.message = ImageAnnotations(timestamp=self.stamp)

    def point(self, xy) -> Point2:
        (gx, gy), (ox, oy) = self.geometry.scale, self.geometry.offset
        return Point2(x=(float(xy[0]) * gx + ox) * self.scale[0], y=(float(xy[1]) * gy + oy) * self.scale[1])

    def shape(self, kind: int, points, colour: Color, thickness: float = 2.0, metadata: dict | None = None) -> None:
        pairs = [KeyValuePair(key=k, value=str(v)) for k, v in (metadata or {}).items()]
        self.message.points.append(PointsAnnotation(timestamp=self.stamp, type=kind, outline_color=colour,
                                                    points=[self.point(p) for p in points], thickness=thickness,
                                                    metadata=pairs))

    def text(self, xy, text: str, colour: Color) -> None:
        self.message.texts.append(TextAnnotation(timestamp=self.stamp, position=self.point(xy), text=text,
                                                 font_size=12.0, text_color=Color(r=1.0, g=1.0, b=1.0, a=1.0),
                                                 background_color=colour))


def colour(label) -> Color:
    r, g, b = PALETTE[int(label) % len(PALETTE)] if isinstance(label, int) else PALETTE[0]
    return Color(r=r, g=g, b=b, a=1.0)


def _detection(canvas: Canvas, detection: dict) -> None:
    shade = colour(detection.get("label", 0))
    name = str(detection.get("class", detection.get("label", "")))
    score = detection.get("score")
    track = detection.get("track")
    words = [name] + ([f"{score:.2f}"] if isinstance(score, (int, float)) else []) + (
        [f"#{track}"] if track is not None else [])
    x0, y0, x1, y1 = detection["box"]
    outline = detection.get("corners") or [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    facts = {k: detection[k] for k in ("class", "label", "score", "track") if detection.get(k) is not None}
    canvas.shape(PointsAnnotation.LINE_LOOP, outline, shade, metadata=facts)
    canvas.text((x0, y0), " ".join(words), shade)
    keypoints = [p for p in detection.get("keypoints") or () if len(p) < 3 or p[2] >= VISIBLE]
    if keypoints:
        canvas.shape(PointsAnnotation.POINTS, keypoints, shade, thickness=4.0)
    for polygon in ((detection.get("mask") or {}).get("polygons") or ())[:MAX_OUTLINES]:
        canvas.shape(PointsAnnotation.LINE_LOOP, polygon, shade, thickness=1.0)


def _segments(canvas: Canvas, classes: dict) -> None:
    for name, found in classes.items():
        shade = colour(found.get("label", 0))
        contours = (found.get("contours") or ())[:MAX_OUTLINES]
        for contour in contours:
            canvas.shape(PointsAnnotation.LINE_LOOP, contour, shade, thickness=1.0, metadata={"class": name})
        if contours and contours[0]:
            canvas.text(contours[0][0], str(name), shade)


def draws(outputs: dict) -> bool:
    """Whether an answer has something to draw (a detector's or a segmenter's; a classifier's has not)."""
    return isinstance(outputs.get("detections"), list) or isinstance(outputs.get("classes"), dict)


def annotate(outputs: dict, geometry: Geometry, scale: tuple[int, int], timestamp_ns: int) -> bytes:
    """One serialized ``foxglove.ImageAnnotations`` of an answer that :func:`draws` (empty when it found nothing,
    which clears the last frame's boxes in a viewer)."""
    canvas = Canvas(geometry, scale, timestamp_ns)
    for detection in outputs.get("detections") or ():
        if isinstance(detection, dict) and len(detection.get("box") or ()) == 4:
            _detection(canvas, detection)
    if isinstance(outputs.get("classes"), dict):
        _segments(canvas, outputs["classes"])
    return canvas.message.SerializeToString()
