"""Conformance: ultralytics' own YOLOv8n ONNX export, keyed, detects what the plain model detects.

``YOLO("yolov8n.yaml").export(format="onnx", imgsz=..., dynamic=...)`` (random weights, no download;
``export/zoo/yolo.py``) at 320x320, 384x640 and 640x640, fixed batch (ultralytics' default, with its hard-coded
``/model.22/dfl/Reshape``) and dynamic, both policies, on real photographs. The output is (N, 4 + 80, anchors):
cx, cy, w, h in input pixels, then class scores. Under ``fresh`` the anchors come in a keyed order (three
segments, one per scale, each in its scale's layout) and the boxes are the plain model's: OpenCV's NMS on the
keyed output, with nothing restored, gives the plain model's detections (boxes within 1e-3 px, the same classes
and scores); restored, the raw output equals the plain one to float tolerance.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from export.keyify import KeyifyOptions, keyify
from tests.export.detection import assert_same_detections, photos, score_threshold, yolo_detections
from tests.export.helpers import TOLERANCE, plain_input, relative_error, restore, scramble, session

POLICIES = ["fresh", "boundary"]
VARIANTS = [((320, 320), False), ((320, 320), True), ((384, 640), False),
            pytest.param((384, 640), True, marks=pytest.mark.slow),
            pytest.param((640, 640), False, marks=pytest.mark.slow),
            pytest.param((640, 640), True, marks=pytest.mark.slow)]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("imgsz, dynamic", VARIANTS)
def test_keyed_yolov8n_detects_what_the_plain_model_detects(key, yolo, policy, imgsz, dynamic, shared_models):
    path = yolo(imgsz, dynamic)
    plain = onnx.load(path)
    height, width = imgsz
    options = KeyifyOptions(policy=policy, std=(255.0,), size=imgsz if dynamic else None)  # images / 255
    keyed = shared_models.keyified(plain, key, options)  # keyify, once per session (tests/shared_models.py)
    batch = 2 if dynamic else 1
    pictures = photos(height, width, batch)
    want = session(plain, optimise=False).run(None, {"images": plain_input(pictures, std=options.std)})[0]
    got = session(keyed.model).run(None, {"measurement": scramble(pictures, key, options)})[0]
    anchors = sum((height // s) * (width // s) for s in (8, 16, 32))
    assert got.shape == want.shape == (batch, 84, anchors)

    out = keyed.manifest.outputs[0]
    assert (out.name, out.shape) == ("output0", [None if dynamic else 1, 84, anchors])
    assert keyed.manifest.batch == (None if dynamic else 1)
    assert keyed.manifest.input.shape == [None if dynamic else 1, height, width, 3]
    assert keyed.manifest.task == "detect" and keyed.manifest.labels == [str(i) for i in range(80)]
    if policy == "fresh":
        assert out.kind == "dense" and out.form == "anchors" and out.axis == 2
        assert [(s.length, s.layout.height, s.layout.width) for s in out.segments] == [
            ((height // s) * (width // s), height // s, width // s) for s in (8, 16, 32)]
        assert not np.allclose(got, want)  # the anchors really are in another order
    else:
        assert out.kind == "plain"

    restored = restore(got, out, key) if out.kind == "dense" else got
    assert relative_error(restored, want) <= TOLERANCE
    assert np.max(np.abs(restored[:, :4] - want[:, :4])) <= 1e-3  # boxes, in pixels
    for image in range(batch):  # NMS on the keyed output as it is: no restore
        # OpenCV's usual 0.25 (hundreds of detections from a random network), and tens (see score_threshold)
        for score in (0.25, score_threshold(want[image, 4:].max(axis=0))):
            assert_same_detections(yolo_detections(got[image], score), yolo_detections(want[image], score))


def test_the_keyed_model_keeps_ultralytics_metadata(key, yolo, shared_models):
    plain = onnx.load(yolo((320, 320), False))
    keyed = shared_models.keyified(plain, key, KeyifyOptions(policy="fresh", std=(255.0,)))
    before = {p.key: p.value for p in plain.metadata_props}
    after = {p.key: p.value for p in keyed.model.metadata_props}
    for name in ("names", "stride", "imgsz", "task", "batch"):
        assert after[name] == before[name]
    assert before["task"] == "detect" and before["imgsz"] == "[320, 320]" and before["stride"] == "32"


def test_the_dynamic_export_asks_for_the_size_its_metadata_gives(key, yolo):
    from export.errors import UnsupportedModel

    with pytest.raises(UnsupportedModel, match=r"pass --size HxW \(its metadata says imgsz \[320, 320\]\)"):
        keyify(str(yolo((320, 320), True)), key, KeyifyOptions(policy="fresh"))
