"""keycam's detections against ultralytics' own predict on the same photos and the same exports: YOLO11n (the
``yolo`` decoder, NMS by OpenCV), YOLOv10n and YOLO26n exported end to end (``end2end``: the model's own top-k rows),
and RT-DETR-l (``rtdetr``, slow: its export takes a minute). The decoder answers the plain ONNX model's raw outputs on
the tensor ultralytics built (its letterbox; RT-DETR's stretch), through the device's answer stage, in the photos'
own pixels; both are given the same thresholds (conf from a wide gap between candidates' scores, IoU 0.7 and at most
100 detections: ultralytics' predict defaults but conf, not keycam's 0.5 / 0.45, docs/tasks.md). Same count, same
classes, boxes within a pixel (they agree to keycam's rounding, 0.005 px), scores to 1e-6."""

from __future__ import annotations

import pytest

from edge.tasks import DECODERS, TaskConfig, make_decoder
from tests.edge.tasks import oracle
from tests.edge.tasks.ultralytics_zoo import photos, predict

MODELS = {"yolo11n": "yolo", "yolov10n": "end2end", "yolo26n": "end2end"}
PHOTOS = {**photos(), **photos(square=False)}


@pytest.fixture(scope="module")
def predicted(shared_models):
    return predict(shared_models, list(MODELS), PHOTOS)


@pytest.mark.parametrize("name", list(MODELS))
def test_the_decoder_is_chosen_from_the_manifest(predicted, name):
    manifest = oracle.manifest_of(predicted[name].path)
    assert manifest.task == "detect" and len(manifest.labels) == 80
    assert type(make_decoder(TaskConfig(), manifest)) is DECODERS[MODELS[name]]


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("photo", list(PHOTOS))
def test_detections_equal_ultralytics_predict(predicted, name, photo):
    frame = predicted[name].frames[photo]
    found = oracle.answer(predicted[name].path, frame)
    differences = oracle.same_boxes(found, frame.found["boxes"])
    assert differences["count"] >= 1, "the photo gave no detection to compare"
    assert differences["box"] <= 1.0 and differences["score"] <= 1e-6, differences


@pytest.mark.slow
def test_rtdetr_detections_equal_ultralytics_predict(shared_models):
    """RT-DETR-l at 320 x 320 (ultralytics 8.4 writes (1, 300, 6): cx, cy, w, h as fractions, score, class), stretched
    to the model as ultralytics' RT-DETR predictor does; ultralytics leaves its boxes unclipped, keycam clips them to
    the photo, so they are compared clipped. (N, 300, 6) is also the end-to-end YOLO shape: named, not chosen."""
    rtdetr = predict(shared_models, ["rtdetr-l"], PHOTOS)["rtdetr-l"]
    manifest = oracle.manifest_of(rtdetr.path)
    assert type(make_decoder(TaskConfig(decoder="rtdetr"), manifest)) is DECODERS["rtdetr"]
    compared = 0
    for frame in rtdetr.frames.values():
        found = oracle.answer(rtdetr.path, frame, "stretch", decoder="rtdetr")
        height, width = frame.image.shape[:2]
        differences = oracle.same_boxes(found, frame.found["boxes"], clip_to=(width, height))
        assert differences["box"] <= 1.0 and differences["score"] <= 1e-6, differences
        compared += differences["count"]
    assert compared >= 30
