"""keycam's instance masks against ultralytics' own predict on the same photos and the same exports (YOLO11n-seg,
YOLOv8n-seg, YOLO26n-seg end to end), and a keyed YOLOv8n-seg under the ``fresh`` policy on the device, whose prototypes stay scrambled.

The ``instances`` decoder answers the plain model's two outputs (the head (1, 116, 2100) and the prototypes (1, 32,
80, 80)) on the tensor ultralytics built; both are given the same thresholds. Boxes agree to keycam's rounding; each
mask is compared as keycam answers it, its outlines rasterised in the photo's pixels, with ultralytics' mask scaled
to the photo (``ops.scale_masks``): IoU at least 0.9 per instance. The masks themselves are the same (ultralytics'
``process_mask``: bilinear 4x upsampling, threshold, crop to the box); the IoU is below 1 because the two bring a
mask of input pixels to the photo's pixels differently: ultralytics resizes the binary mask bilinearly and thresholds
it at 0.5, keycam traces outlines within 1/8 of an input pixel of its edge and simplifies them within half an input
pixel (an input pixel is 1.25 to 2 photo pixels here); a one-pixel disagreement along the outline of a mask of a few
hundred photo pixels costs a tenth of its IoU (the smallest here: 0.92, at 184 photo pixels). The area keycam
answers (mask pixels times the photo area of an input pixel) is ultralytics' mask's at the input size, exactly: the
masks are the same, pixel for pixel."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edge.sensor import Readout
from edge.tasks import DECODERS, Geometry, TaskConfig, make_decoder
from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from tests.edge.tasks import oracle
from tests.edge.tasks.ultralytics_zoo import photos, predict
from tests.export.detection import score_threshold
from tests.inprocess import keycam

PHOTOS = {**photos(), **photos(square=False)}
MODELS = ["yolo11n-seg", "yolov8n-seg", "yolo26n-seg"]  # YOLO26n-seg end to end: (1, 300, 38), no NMS


@pytest.fixture(scope="module")
def predicted(shared_models):
    return predict(shared_models, MODELS, PHOTOS)


@pytest.mark.parametrize("name", MODELS)
def test_the_instances_decoder_is_chosen_from_the_manifest(predicted, name):
    manifest = oracle.manifest_of(predicted[name].path)
    assert manifest.task == "segment" and [len(o.shape) for o in manifest.outputs] == [3, 4]
    assert type(make_decoder(TaskConfig(), manifest)) is DECODERS["instances"]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("photo", list(PHOTOS))
def test_boxes_and_masks_equal_ultralytics_predict(predicted, name, photo):
    frame = predicted[name].frames[photo]
    found = oracle.answer(predicted[name].path, frame)
    boxes = frame.found["boxes"]
    differences = oracle.same_boxes(found, boxes)
    assert differences["box"] <= 1.0 and differences["score"] <= 1e-6, differences
    ious = oracle.mask_ious(found, boxes, frame.found["masks"])
    assert all(iou >= 0.9 for iou in ious), ious
    height, width = frame.image.shape[:2]
    corner = Geometry.of(320, 320, (width, height), "letterbox").to_camera(np.array([[0.0, 0.0, 1.0, 1.0]]))[0]
    pixel = (corner[2] - corner[0]) * (corner[3] - corner[1])  # the photo's pixels per input pixel
    theirs = frame.found["mask_pixels"][oracle._key(boxes)]
    for item, count in zip(oracle.order(found), theirs):
        assert item["mask"]["pixels"] == pytest.approx(count * pixel, abs=0.01)  # the same mask


@pytest.mark.parametrize("name", MODELS)
def test_instances_were_compared(predicted, name):
    assert sum(len(frame.found["boxes"]) for frame in predicted[name].frames.values()) >= 10


def test_keyed_under_fresh_the_device_restores_the_prototypes_and_answers_as_the_plain_model(predicted, key,
                                                                                               tmp_path):
    """YOLOv8n-seg keyed under ``fresh``: the prototypes (1, 32, 80, 80) leave the model in a key-derived layout
    (dense), the head's anchors in keyed orders. ``keycam replay`` (the device's path: readout, keyed model, the
    answer stage restoring the prototypes with the key, the decoder chosen from the manifest) answers the photos as
    the plain model answers the frames the sensor gives it (keycam's own letterbox)."""
    keyed = keyify(onnx.load(predicted["yolov8n-seg"].path), key, KeyifyOptions(policy="fresh", std=(255.0,)))
    head, protos = keyed.manifest.outputs
    assert protos.kind == "dense" and protos.layout is not None and keyed.manifest.input.fit == "letterbox"
    save(keyed, tmp_path / "keyed.onnx")
    key.save(tmp_path / "k.key")
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, image in PHOTOS.items():
        cv2.imwrite(str(folder / f"{name}.png"), image)
    readout = Readout.for_model(keyed.manifest, key)
    session = ort.InferenceSession(str(predicted["yolov8n-seg"].path), providers=["CPUExecutionProvider"])
    plain = {}
    for name, image in PHOTOS.items():
        x = readout.prepare(image, "bgr").astype(np.float32).transpose(2, 0, 1)[np.newaxis] / 255.0  # (1, 3, H, W)
        plain[f"{name}.png"] = (session.run(None, {"images": np.ascontiguousarray(x)}), image.shape[1::-1])
    threshold = score_threshold(np.concatenate([out[0][0, 4:84].max(axis=0) for out, _ in plain.values()]), 20, 80)
    (tmp_path / "task.toml").write_text(f"[task]\nscore_threshold = {threshold!r}\niou_threshold = 0.7\n")
    done = keycam("replay", str(folder), "--model", str(tmp_path / "keyed.onnx"), "--key", str(tmp_path / "k.key"),
                  "--config", str(tmp_path / "task.toml"), "--output", str(tmp_path / "r.jsonl"), timeout=300)
    assert done.returncode == 0, done.stderr
    results = {r["origin"]: r["outputs"] for r in map(json.loads, (tmp_path / "r.jsonl").read_text().splitlines())}
    manifest = oracle.manifest_of(predicted["yolov8n-seg"].path)
    decoder = make_decoder(TaskConfig(score_threshold=threshold, iou_threshold=0.7), manifest)
    compared = 0
    for name, (outputs, camera) in plain.items():
        want = decoder.decode(outputs, Geometry.of(320, 320, camera, "letterbox"))["detections"]
        got = results[name]["detections"]
        assert [d["label"] for d in got] == [d["label"] for d in want], name
        for g, w in zip(got, want):
            assert np.abs(np.subtract(g["box"], w["box"])).max() <= 0.011 and abs(g["score"] - w["score"]) <= 1e-5
            ours, theirs = (oracle.raster(d["mask"]["polygons"], camera) for d in (g, w))
            assert (ours & theirs).sum() >= 0.99 * (ours | theirs).sum(), name
        compared += len(got)
    assert compared >= 10
