"""keycam's answers on an ultralytics export's raw outputs, beside ultralytics' own predict (``ultralytics_zoo``).

:func:`answer` runs the plain ONNX model on the very tensor ultralytics built for a photo and answers it as the device
does: a manifest like keyify's (the outputs' shapes, the task and class names from the model's metadata), the decoder
``make_decoder`` chooses from it, and one :class:`~edge.answers.Answers` stage with the model's framing (``letterbox``,
or ``stretch`` for RT-DETR), so the answer is in the photo's own pixels. The ``same_*`` functions compare it with what
ultralytics found and return the largest differences, for the tests to bound and the report to quote.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from edge.answers import Answers
from edge.frame import Frame
from edge.tasks import TaskConfig, make_decoder
from export.compiler.metadata import labels_of, task_of
from firmware_sim.manifest import Manifest, OutputSpec
from tests.edge.contracts import manifest_with
from tests.edge.tasks.ultralytics_zoo import Frame as Photo

IOU = 0.7  # ultralytics' predict default, given to both
MAX_DET = 100


@lru_cache(maxsize=8)
def _session(path: str) -> ort.InferenceSession:
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def manifest_of(path: Path) -> Manifest:
    """A manifest as keyify writes one for this plain model: its outputs, input size, task and class names."""
    session = _session(str(path))
    outputs = [OutputSpec(name=o.name, shape=[d if isinstance(d, int) else None for d in o.shape], kind="plain")
               for o in session.get_outputs()]
    _, _, height, width = session.get_inputs()[0].shape
    metadata = session.get_modelmeta().custom_metadata_map
    return manifest_with(outputs, (height, width)).model_copy(
        update={"task": task_of(metadata, None), "labels": labels_of(metadata, None)})


def answer(path: Path, photo: Photo, fit: str = "letterbox", **settings) -> dict:
    """keycam's answer for ``photo`` from the plain model's raw outputs on ultralytics' own input tensor."""
    session = _session(str(path))
    raw = session.run(None, {session.get_inputs()[0].name: photo.input})
    manifest = manifest_of(path)
    task = TaskConfig(score_threshold=photo.threshold, iou_threshold=IOU, max_detections=MAX_DET, **settings)
    answers = Answers(manifest, make_decoder(task, manifest), None, fit)
    height, width = photo.image.shape[:2]
    frame = Frame(None, 0, 0, "ultralytics", measured=True, source_size=(width, height))
    return answers({spec.name: value for spec, value in zip(manifest.outputs, raw)}, frame)


def _key(rows: np.ndarray) -> np.ndarray:
    """The order of detections (x0, y0, x1, y1, score, ...): best first by the score as keycam writes it (rounded to
    1e-6: RT-DETR's random queries score alike), then by the box."""
    return np.lexsort((rows[:, 1], rows[:, 0], -np.round(rows[:, 4], 6))) if len(rows) else np.zeros(0, np.int64)


def _ordered(rows: np.ndarray) -> np.ndarray:
    return rows[_key(rows)]


def same_boxes(found: dict, boxes: np.ndarray, clip_to: tuple[int, int] | None = None) -> dict:
    """keycam's detections against ultralytics' (n, 6) boxes: the same count and classes; the largest box and score
    differences. ``clip_to`` (w, h): clip ultralytics' boxes first (RT-DETR's are not clipped)."""
    ours = np.array([[*d["box"], d["score"], d["label"]] for d in found["detections"]]).reshape(-1, 6)
    theirs = boxes.astype(np.float64).copy()
    if clip_to is not None:
        theirs[:, [0, 2]] = theirs[:, [0, 2]].clip(0, clip_to[0])
        theirs[:, [1, 3]] = theirs[:, [1, 3]].clip(0, clip_to[1])
    ours, theirs = _ordered(ours), _ordered(theirs)
    assert len(ours) == len(theirs), (len(ours), len(theirs))
    assert np.array_equal(ours[:, 5], theirs[:, 5]), (ours[:, 5], theirs[:, 5])
    if not len(ours):
        return {"count": 0, "box": 0.0, "score": 0.0}
    return {"count": len(ours), "box": float(np.abs(ours[:, :4] - theirs[:, :4]).max()),
            "score": float(np.abs(ours[:, 4] - theirs[:, 4]).max())}


def order(found: dict) -> list[dict]:
    """keycam's detections in :func:`_ordered`'s order."""
    items = found["detections"]
    keys = np.array([[*d["box"], d["score"]] for d in items]).reshape(-1, 5)
    return [items[i] for i in _key(keys)]


def same_keypoints(found: dict, boxes: np.ndarray, keypoints: np.ndarray) -> float:
    """The largest difference between keycam's keypoints (x, y in pixels, visibility) and ultralytics'."""
    theirs = keypoints[_key(boxes)]  # (n, K, D) in the same order
    ours = np.array([d["keypoints"] for d in order(found)], np.float64).reshape(theirs.shape)
    return float(np.abs(ours - theirs).max()) if ours.size else 0.0


def raster(polygons: list, size: tuple[int, int], fine: int = 8) -> np.ndarray:
    """A mask (h, w) bool of polygons in continuous pixel coordinates (a pixel's centre at +0.5), filled with the
    even-odd rule: a pixel is in when its centre is. Drawn ``fine`` times finer and sampled at the pixel centres, so
    that the edge OpenCV draws along the outline adds 1/``fine`` of a pixel, not half of one."""
    width, height = size
    canvas = np.zeros((height * fine, width * fine), np.uint8)
    shift = 4  # sub-pixel vertices: 1/16 of a fine pixel
    points = [np.round((np.asarray(p, np.float64).reshape(-1, 2) * fine - 0.5) * (1 << shift)).astype(np.int32)
              for p in polygons]
    cv2.fillPoly(canvas, points, 1, lineType=cv2.LINE_8, shift=shift)
    return canvas[fine // 2::fine, fine // 2::fine].astype(bool)


def mask_ious(found: dict, boxes: np.ndarray, masks: np.ndarray) -> list[float]:
    """Per detection, the IoU of keycam's polygons (rasterised in the photo's pixels) with ultralytics' mask."""
    theirs = masks[_key(boxes)]  # (n, h, w)
    height, width = masks.shape[1:]
    ious = []
    for item, mask in zip(order(found), theirs):
        ours = raster(item["mask"]["polygons"], (width, height))
        ious.append(float((ours & mask).sum() / max(1, (ours | mask).sum())))
    return ious
