"""A trained detector, so the results are real: the BlazeFace face detector (mediapipe's, converted at set-up),
keyed, finds the same faces as the plain model on package-shipped photos, in the camera frame's pixels."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from edge.config import Config
from edge.errors import ModelError
from edge.faces import LABELS, MEAN, SPEC, STD, face_model, task_settings
from edge.job import build_job
from edge.lab.demo import shipped_photo
from edge.sensor import Readout
from edge.sources.folder import FolderConfig
from edge.tasks import Geometry, make_decoder

PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "motorcycle_left")


@pytest.fixture(scope="module")
def detector():
    try:
        return face_model()
    except ModelError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The photos, and an off-centre non-square crop of the astronaut (her face away from the middle)."""
    folder = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        picture = cv2.imread(str(shipped_photo(name)), cv2.IMREAD_COLOR)
        cv2.imwrite(str(folder / f"{name}.png"), picture)
    astronaut = cv2.imread(str(shipped_photo("astronaut")))
    cv2.imwrite(str(folder / "zz_crop.png"), astronaut[20:300, 60:500])  # 440 x 280, the face at the left
    return folder


def _keyed(detector, key, folder, policy, shared_models):
    """The detector keyed (once per session: ``shared_models``), saved in ``folder``."""
    from export.keyify import KeyifyOptions
    from export.package.save import save

    path = folder / f"face-{policy}.onnx"
    save(shared_models.keyified(detector, key, KeyifyOptions(spec=SPEC, mean=MEAN, std=STD, policy=policy)), path)
    return path


def _plain_detections(detector, photo: Path, manifest, key):
    """The plain model on the same sensor frame, decoded the same way: the reference."""
    readout = Readout.for_model(manifest, key)
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    frame = readout.prepare(image, "bgr").astype(np.float32)  # the sensor's RGB, 128 x 128
    x = ((frame - 127.5) / 127.5).transpose(2, 0, 1)[np.newaxis]  # (1, 128, 128, 3) -> (1, 3, 128, 128)
    session = ort.InferenceSession(str(detector), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x)})
    decoder = make_decoder(task_settings(), manifest, LABELS)
    height, width = image.shape[:2]
    return decoder.decode(outputs, Geometry.of(128, 128, (width, height)))


@pytest.mark.parametrize("policy", ["boundary", "fresh"])
def test_keyed_face_detections_equal_the_plain_models_in_camera_pixels(detector, photos, key, tmp_path, policy,
                                                                       shared_models):
    key.save(tmp_path / "k.key")
    model = _keyed(detector, key, tmp_path, policy, shared_models)
    config = Config()
    config.source = FolderConfig(path=photos)
    config.model.path, config.model.key = str(model), str(tmp_path / "k.key")
    config.task = task_settings()
    config.results.path = str(tmp_path / "r.jsonl")
    job = build_job(config, replay=True)
    job.run()
    results = {r["origin"]: r["outputs"] for r in map(json.loads, (tmp_path / "r.jsonl").read_text().splitlines())}
    assert len(results) == len(PHOTOS) + 1
    for name, keyed in results.items():
        plain = _plain_detections(detector, photos / name, job.pipeline.manifest, key)
        assert len(keyed["detections"]) == len(plain["detections"]), name
        for got, want in zip(keyed["detections"], plain["detections"]):
            assert np.abs(np.subtract(got["box"], want["box"])).max() <= 1e-2, name  # boxes rounded to 0.01 px
            assert abs(got["score"] - want["score"]) <= 2e-6 and got["class"] == "face"
    (face,) = results["astronaut.png"]["detections"]  # one face, where Eileen Collins' face is
    x0, y0, x1, y1 = face["box"]
    assert 150 < x0 < 230 and 60 < y0 < 130 and 230 < x1 < 320 and 140 < y1 < 230 and face["score"] > 0.8
    (cropped,) = results["zz_crop.png"]["detections"]  # the same face, found in the crop's own pixels
    assert np.abs(np.subtract(cropped["box"], [x0 - 60, y0 - 20, x1 - 60, y1 - 20])).max() < 12
    assert results["coffee.png"]["detections"] == [] and results["coffee.png"]["counts"] == {}


def test_detections_replayed_from_a_recording_are_the_live_ones_byte_for_byte(detector, photos, key, tmp_path,
                                                                              shared_models):
    """The recording keeps each frame's camera size, so a replay maps boxes into the same camera pixels; two replays
    write the same file, byte for byte, and it equals the live run's answers."""
    from edge.sources.recording import RecordingConfig

    key.save(tmp_path / "k.key")
    model = _keyed(detector, key, tmp_path, "boundary", shared_models)

    def config(source, results, record=""):
        settings = Config()
        settings.source = source
        settings.model.path, settings.model.key = str(model), str(tmp_path / "k.key")
        settings.task = task_settings()
        settings.results.path, settings.record.path = str(results), record
        return settings

    build_job(config(FolderConfig(path=photos), tmp_path / "live.jsonl", str(tmp_path / "r.mcap")), replay=True).run()
    for name in ("a", "b"):
        build_job(config(RecordingConfig(path=tmp_path / "r.mcap"), tmp_path / f"{name}.jsonl"), replay=True).run()
    first, second = (tmp_path / "a.jsonl").read_bytes(), (tmp_path / "b.jsonl").read_bytes()
    assert first == second and first.count(b"\n") == len(PHOTOS) + 1
    live = [json.loads(line)["outputs"] for line in (tmp_path / "live.jsonl").read_text().splitlines()]
    replayed = [json.loads(line)["outputs"] for line in first.decode().splitlines()]
    assert replayed == live and sum(r["counts"].get("face", 0) for r in replayed) >= 2
