"""The most-used edge detector on the device, end to end: ultralytics' own YOLOv8n export (fixed batch, 384 x 640),
keyed under both policies, run by ``keycam replay`` over photos of other sizes and aspect ratios. The decoder is
chosen from the manifest (``task = detect`` from ultralytics' metadata), the class names are the model's own
(``names``), and the detections, in the photos' own pixels, are the plain model's on the same frames. Under
``fresh`` nothing is restored: the boxes come out of the model in a keyed order and NMS does not care."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edge.sensor import Readout
from edge.tasks import Geometry, TaskConfig, make_decoder
from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from firmware_sim.manifest import Manifest
from tests.export.detection import PHOTOS, score_threshold
from tests.inprocess import keycam
SIZE = (384, 640)  # H x W, as ultralytics' imgsz


def _frames(folder: Path) -> Path:
    """The photos at their own sizes (512 x 512, 600 x 400, ...), and an off-centre crop of the astronaut."""
    from edge.lab.demo import shipped_photo

    folder.mkdir()
    for name in PHOTOS:
        cv2.imwrite(str(folder / f"{name}.png"), cv2.imread(str(shipped_photo(name)), cv2.IMREAD_COLOR))
    astronaut = cv2.imread(str(shipped_photo("astronaut")))
    cv2.imwrite(str(folder / "zz_crop.png"), astronaut[40:500, 100:380])  # 280 x 460: taller than wide
    return folder


def _plain_outputs(plain: Path, frames: Path, manifest: Manifest, key) -> dict[str, tuple[np.ndarray, tuple]]:
    """The plain model on the frames the sensor gives it: (output (1, 84, A), camera size) per file."""
    readout = Readout.for_model(manifest, key)
    session = ort.InferenceSession(str(plain), providers=["CPUExecutionProvider"])
    found = {}
    for path in sorted(frames.iterdir()):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        frame = readout.prepare(image, "bgr").astype(np.float32)  # the sensor's R,G,B at 384 x 640
        x = np.ascontiguousarray((frame / 255.0).transpose(2, 0, 1)[np.newaxis])  # (1, H, W, 3) -> (1, 3, H, W)
        found[path.name] = (session.run(None, {"images": x})[0], (image.shape[1], image.shape[0]))
    return found


@pytest.mark.parametrize("policy", ["boundary", "fresh"])
def test_keyed_yolov8n_on_the_device_detects_what_the_plain_model_detects_in_camera_pixels(yolo, key, tmp_path,
                                                                                           policy, shared_models):
    plain = yolo(SIZE, False)
    key.save(tmp_path / "k.key")
    keyed = shared_models.keyified(onnx.load(plain), key, KeyifyOptions(policy=policy, std=(255.0,)))
    save(keyed, tmp_path / "keyed.onnx")
    manifest = keyed.manifest
    assert manifest.task == "detect" and len(manifest.labels) == 80 and manifest.input.shape[0] == 1
    assert (manifest.input.fit, manifest.input.pad) == ("letterbox", 114.0)  # ultralytics' LetterBox, from metadata
    assert manifest.input.sources["fit"] == "ultralytics metadata" and manifest.input.sources["std"] == "--std"
    frames = _frames(tmp_path / "frames")
    reference = _plain_outputs(plain, frames, manifest, key)
    # a threshold in the widest gap of all the photos' scores: float rounding cannot move a candidate across it
    threshold = score_threshold(np.concatenate([out[0, 4:].max(axis=0) for out, _ in reference.values()]), 40, 200)
    (tmp_path / "task.toml").write_text(f"[task]\nscore_threshold = {threshold!r}\n")
    done = keycam("replay", str(frames), "--model", str(tmp_path / "keyed.onnx"), "--key",
                  str(tmp_path / "k.key"), "--config", str(tmp_path / "task.toml"), "--output",
                  str(tmp_path / "r.jsonl"), timeout=300)
    assert done.returncode == 0, done.stderr
    results = {r["origin"]: r["outputs"] for r in map(json.loads, (tmp_path / "r.jsonl").read_text().splitlines())}
    assert sorted(results) == sorted(reference)
    decoder = make_decoder(TaskConfig(score_threshold=threshold), manifest)
    total = 0
    for name, (output, camera) in reference.items():
        want = decoder.decode([output], Geometry.of(SIZE[1], SIZE[0], camera, manifest.input.fit))["detections"]
        got = results[name]["detections"]
        assert len(got) == len(want), name
        for g, w in zip(got, want):
            assert g["class"] == w["class"] == manifest.labels[g["label"]] and g["label"] == w["label"], name
            assert np.abs(np.subtract(g["box"], w["box"])).max() <= 0.011 and abs(g["score"] - w["score"]) <= 1e-5
            x0, y0, x1, y1 = g["box"]
            assert 0 <= x0 <= x1 <= camera[0] and 0 <= y0 <= y1 <= camera[1]  # in the photo's own pixels
        total += len(got)
    assert total >= 10  # tens of detections over the five frames, every one the plain model's


def test_a_detector_of_a_fixed_batch_above_one_is_refused_at_start_up(key, tmp_path):
    from export.zoo.detectors import ssd_head

    key.save(tmp_path / "k.key")
    save(keyify(ssd_head(batch=2), key, KeyifyOptions()), tmp_path / "b2.onnx")
    done = keycam("replay", str(tmp_path), "--model", str(tmp_path / "b2.onnx"), "--key",
                  str(tmp_path / "k.key"), "--output", str(tmp_path / "r.jsonl"), timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "takes batches of exactly 2 frames" in done.stderr and len(done.stderr.strip().splitlines()) == 1
