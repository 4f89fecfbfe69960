"""The trained face detector keycam ships a recipe for: BlazeFace short range, its settings and where it lives.

``scripts/face-detector.sh`` (run by ``scripts/setup-venv.sh``) takes the model from mediapipe 0.10.21's wheel
on PyPI and converts it with tflite2onnx into ``<venv>/share/keycam/face_detection_short_range.onnx``; no
weights are committed. Input (1, 3, 128, 128), RGB scaled to [-1, 1] (mean = std = 127.5 on the 0..255 scale);
outputs regressors (1, 896, 16) (box and six keypoints per anchor) and classificators (1, 896, 1), decoded by
the SSD decoder with BlazeFace's anchors (``edge.tasks.ssd``, the defaults of ``[task.anchors]``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from edge import places
from edge.errors import ModelError
from edge.tasks import TaskConfig
from firmware_sim.spec import PRESETS

FILE = places.FACE_MODEL_FILE
MEAN = STD = (127.5, 127.5, 127.5)
SPEC = PRESETS["rgb8"]
LABELS = ["face"]


def face_model() -> Path:
    """The converted detector (``edge.places.face_model``: ``$KEYCAM_FACE_MODEL``, or where set-up put it)."""
    path = places.face_model()
    if not path.is_file():
        raise ModelError(f"the face detector '{path}' is not installed; run: bash scripts/face-detector.sh "
                         f"{sys.prefix} (it fetches mediapipe's BlazeFace from PyPI and converts it)")
    return path


def task_settings() -> TaskConfig:
    """How the detector's outputs are read: SSD over BlazeFace's 896 anchors, MediaPipe's thresholds."""
    return TaskConfig(kind="detect", decoder="ssd", score_threshold=0.5, iou_threshold=0.3, names=LABELS)
