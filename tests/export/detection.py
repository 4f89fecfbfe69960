"""Shared by the detector tests: ultralytics' YOLOv8n exports (made once per session), real photos at a detector's
input size, and detections after OpenCV's NMS.

ultralytics and PyTorch are test extras that scripts/setup-venv.sh installs on x86_64; there they must be present
(a missing install fails loudly), elsewhere (aarch64: no PyTorch wheel here) the tests that need them are
skipped with the reason.
"""

from __future__ import annotations

import inspect
import platform

import cv2
import numpy as np
import pytest

from export.zoo.yolo import PINNED, available, export_yolov8n

# what the default suite exports, in one child process: fixed and dynamic batch, square and not
DEFAULT_VARIANTS = [((320, 320), False), ((320, 320), True), ((384, 640), False)]
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def require_ultralytics() -> None:
    if available():
        return
    if platform.machine() == "x86_64":
        raise ImportError(f"ultralytics or PyTorch is missing, but scripts/setup-venv.sh installs them for the tests "
                          f"on x86_64: run scripts/setup-venv.sh test (pip install --no-deps {PINNED} ...)")
    pytest.skip(f"PyTorch and ultralytics are not installed on this {platform.machine()} machine (setup-venv.sh "
                "installs them on x86_64 only)")


@pytest.fixture(scope="session")
def yolo(shared_models):
    """yolo((H, W), dynamic, detecting=True, simplify=True) -> the path of that export, made at most once per
    session (``export.zoo.yolo.export_yolov8n``) in a folder shared by every module (``shared_models``: read it,
    never write beside it). The folder is named by the exporter's weight tweaks (its defaults: seed, batch-norm
    gain, class and box scales) and the installed versions; each file by its size, batch and kind."""
    require_ultralytics()
    tweaks = {name: parameter.default for name, parameter in inspect.signature(export_yolov8n).parameters.items()
              if name in ("seed", "gain", "class_scale", "box_scale")}

    def exported(variants: list, detecting: bool = True, simplify: bool = True) -> list:
        with shared_models.folder("yolov8n", exporter="export.zoo.yolo.export_yolov8n", **tweaks) as folder:
            return export_yolov8n(folder, variants, detecting, simplify)

    def get(imgsz: tuple[int, int], dynamic: bool, detecting: bool = True, simplify: bool = True):
        return exported([(imgsz, dynamic)], detecting, simplify)[0]

    exported(DEFAULT_VARIANTS)
    return get


def photos(height: int, width: int, count: int) -> np.ndarray:
    """(count, H, W, 3) uint8 RGB: scikit-image's sample photographs, resized."""
    import skimage.data

    pictures = [cv2.resize(getattr(skimage.data, name)()[..., :3], (width, height), interpolation=cv2.INTER_AREA)
                for name in PHOTOS]
    return np.stack([pictures[i % len(pictures)] for i in range(count)])


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, score: float, iou: float) -> np.ndarray:
    """Detections (x0, y0, x1, y1, score, class) of OpenCV's per-class NMS over corner boxes (K, 4).

    The candidates are handed to OpenCV in one canonical order (score, then box), so that exactly tied scores
    are broken the same way whatever order the model wrote its anchors in; the result is sorted the same way.
    """
    order = np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], -scores))
    boxes, scores, classes = boxes[order], scores[order], classes[order]
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    keep = np.asarray(cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), classes.tolist(), score, iou),
                      dtype=np.int64).reshape(-1)
    found = np.concatenate([boxes[keep], scores[keep, None], classes[keep, None].astype(np.float32)], axis=1)
    return found[np.lexsort((found[:, 1], found[:, 0], found[:, 5]))] if len(found) else found.reshape(0, 6)


def score_threshold(scores: np.ndarray, fewest: int = 30, most: int = 100) -> float:
    """A score threshold that keeps tens of candidates (between ``fewest`` and ``most`` of the best): the middle of
    the widest gap between consecutive scores there, so that float rounding cannot move a candidate across it.

    (A random network's scores crowd: with every anchor above OpenCV's usual 0.25, NMS would decide among
    thousands of near-equal candidates, and rounding at 1e-7 would decide some of its ties.)"""
    best = np.sort(scores.ravel())[::-1][: most + 1]
    gaps = best[fewest - 1: most] - best[fewest: most + 1]
    k = fewest - 1 + int(np.argmax(gaps))
    return float((best[k] + best[k + 1]) / 2)


def yolo_detections(output: np.ndarray, score: float = 0.25, iou: float = 0.45) -> np.ndarray:
    """One image's YOLO output (4 + classes, anchors) -- cx, cy, w, h in input pixels, then class scores --
    decoded and NMS'd, in whatever order its anchors come."""
    cx, cy, w, h = output[:4]
    corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return nms(corners, output[4:].max(axis=0), output[4:].argmax(axis=0), score, iou)


def assert_same_detections(got: np.ndarray, want: np.ndarray, box_tolerance: float = 1e-3,
                           score_tolerance: float = 1e-5) -> None:
    assert len(got) == len(want) > 0, (len(got), len(want))
    assert np.array_equal(got[:, 5], want[:, 5])  # the classes
    assert np.max(np.abs(got[:, :4] - want[:, :4])) <= box_tolerance, np.max(np.abs(got[:, :4] - want[:, :4]))
    assert np.max(np.abs(got[:, 4] - want[:, 4])) <= score_tolerance
