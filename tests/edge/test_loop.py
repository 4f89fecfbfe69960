"""The capture loop and replay: determinism, drop policies, clean shutdown, failing cameras, bad config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from mcap.reader import make_reader

from edge import places
from edge.config import ConfigError, load_config
from edge.errors import CameraError
from edge.loop import CaptureLoop
from edge.pipeline import Pipeline
from edge.recording import frame_count
from edge.runtime import KeyedModel
from edge.sensor import Readout
from edge.sinks.results import ResultsSink
from edge.sources.base import Source
from edge.sources.video import VideoConfig
from edge.sources.virtual import VirtualSensor
from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from export.zoo import CIFAR_MEAN, CIFAR_STD, resnet20
from tests.inprocess import Done, keycam
from tests.edge.sources.conftest import pi4_with_camera_module_3  # noqa: F401  (autouse: a fresh fake Pi per test)

KEYCAM = str(Path(sys.executable).with_name("keycam"))


def run(*args, cwd=None) -> Done:
    """`keycam ARGS` in this process (tests/inprocess.py); SIGTERM is tested on a real process below."""
    return keycam(*map(str, args), cwd=cwd)


@pytest.fixture(scope="module")
def job_files(tmp_path_factory):
    """A key, a keyed ResNet-20 (32 x 32, BGR sensor) and a video of 12 frames with camera motion."""
    folder = tmp_path_factory.mktemp("job")
    assert run("keygen", folder / "k.key").returncode == 0
    from firmware_sim.keys import MasterKey

    key = MasterKey.load(folder / "k.key")
    save(keyify(resnet20(), key, KeyifyOptions(mean=CIFAR_MEAN, std=CIFAR_STD, channel_order="bgr")),
         folder / "keyed.onnx")
    from edge.lab.demo import shipped_photo

    photo = cv2.imread(str(shipped_photo()))
    writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 64))
    for i in range(12):  # a pan across the photo
        writer.write(np.ascontiguousarray(photo[100:164, 40 + 8 * i: 136 + 8 * i]))
    writer.release()
    return folder, key


def _results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_record_then_replay_twice_is_deterministic_and_equals_the_model(job_files, tmp_path):
    folder, key = job_files
    first = run("replay", folder / "clip.avi", "--model", folder / "keyed.onnx", "--key", folder / "k.key",
                "--output", tmp_path / "live.jsonl", "--record", tmp_path / "rec.mcap")
    assert first.returncode == 0, first.stderr
    replays = []
    for name in ("a.jsonl", "b.jsonl"):
        done = run("replay", tmp_path / "rec.mcap", "--model", folder / "keyed.onnx", "--key", folder / "k.key",
                   "--output", tmp_path / name)
        assert done.returncode == 0, done.stderr
        replays.append((tmp_path / name).read_bytes())
    assert replays[0] == replays[1]  # the same replay writes the same file, byte for byte
    live, replayed = _results(tmp_path / "live.jsonl"), _results(tmp_path / "a.jsonl")
    assert len(live) == len(replayed) == 12
    assert [r["outputs"] for r in live] == [r["outputs"] for r in replayed]
    # equal to running the keyed model directly on the recorded measurements
    model = KeyedModel(folder / "keyed.onnx", key)
    reader = make_reader(open(tmp_path / "rec.mcap", "rb"))
    from edge.recording import MEASUREMENT_TOPIC, decode_frame

    for record, (_, _, message) in zip(replayed, reader.iter_messages(topics=[MEASUREMENT_TOPIC])):
        measurement, _ = decode_frame(message.data)
        logits = model.run(measurement)[0][0]
        label = next(iter(record["outputs"].values()))["label"]
        assert label == int(np.argmax(logits))


def test_replay_of_a_folder_uses_the_virtual_sensor_and_skips_corrupt_files(job_files, tmp_path):
    folder, key = job_files
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        cv2.imwrite(str(images / f"f{i}.png"), np.full((40, 50, 3), 40 * i, np.uint8))
    (images / "f9.png").write_bytes(b"corrupt")
    done = run("replay", images, "--model", folder / "keyed.onnx", "--key", folder / "k.key", "--output",
               tmp_path / "r.jsonl")
    assert done.returncode == 0, done.stderr
    assert len(_results(tmp_path / "r.jsonl")) == 4 and "1 skipped" in done.stderr


class _Counting(Source):
    """A synthetic source: ``count`` frames, as fast as possible."""

    def __init__(self, count: int, live: bool, shape=(32, 32, 3)) -> None:
        super().__init__()
        self.count, self.live, self.shape = count, live, shape
        self._n = 0

    def _open(self) -> None:
        self._n = 0

    def _read(self):
        if self._n >= self.count:
            return None
        self._n += 1
        return self._frame(np.full(self.shape, self._n % 256, np.uint8), self._n, "synthetic")


def _measured(source: Source, model: KeyedModel, key) -> VirtualSensor:
    """The source read out for the model as a run reads it: by the virtual sensor, at capture."""
    return VirtualSensor(source, Readout.for_model(model.manifest, key, source_order=source.channel_order))


class _SlowSink(ResultsSink):
    def write(self, result):
        time.sleep(0.01)
        super().write(result)


def test_live_sources_drop_the_oldest_and_recorded_sources_never_drop(job_files, tmp_path):
    folder, key = job_files
    model = KeyedModel(folder / "keyed.onnx", key)
    for live in (True, False):
        out = tmp_path / f"{live}.jsonl"
        loop = CaptureLoop(_measured(_Counting(200, live), model, key), Pipeline(model, key),
                           [_SlowSink(out, include_latency=False)],
                           queue_size=2)
        metrics = loop.run()
        if live:
            assert metrics.drops > 0 and metrics.frames + metrics.drops == 200
            sequences = [r["sequence"] for r in _results(out)]
            assert sequences == sorted(sequences) and sequences[-1] == 199  # the newest frames survive
        else:
            assert metrics.drops == 0 and metrics.frames == 200


def test_a_camera_that_fails_is_reopened_and_counted(job_files, tmp_path, monkeypatch):
    from edge.sources.picamera import PicameraConfig, PicameraSource
    from tests.edge.sources.fake_picamera2 import BACKEND, FakePicamera2

    folder, key = job_files
    monkeypatch.setattr(FakePicamera2, "instances", [])
    monkeypatch.setattr(FakePicamera2, "timeout_after", 3)  # the first camera stops after 3 frames
    source = PicameraSource(32, 32, settings=PicameraConfig(timeout_s=0.1), backend=BACKEND)
    model = KeyedModel(folder / "keyed.onnx", key)
    loop = CaptureLoop(_measured(source, model, key), Pipeline(model, key),
                       [ResultsSink(tmp_path / "c.jsonl")], max_frames=8, backoff_s=0.01)
    metrics = loop.run()
    cameras = FakePicamera2.instances
    assert metrics.camera_failures == 1 and metrics.frames == 8 and len(cameras) == 2
    assert all(not c.is_open and c.outstanding == 0 and c.leaked == 0 for c in cameras)


def test_a_camera_that_never_returns_ends_the_run_with_its_error(job_files, tmp_path):
    from types import SimpleNamespace

    from edge.sources.picamera import PicameraConfig, PicameraSource
    from tests.edge.sources.fake_picamera2 import FakePicamera2, Transform

    folder, key = job_files

    class Dead(FakePicamera2):
        def start(self, config=None, show_preview=False):
            super().start(config, show_preview)
            self.frontend_timeout()

    backend = SimpleNamespace(Picamera2=Dead, Transform=Transform)
    model = KeyedModel(folder / "keyed.onnx", key)
    camera = PicameraSource(32, 32, settings=PicameraConfig(timeout_s=0.05), backend=backend)
    loop = CaptureLoop(_measured(camera, model, key), Pipeline(model, key),
                       [ResultsSink(tmp_path / "d.jsonl")], retries=2, backoff_s=0.01)
    with pytest.raises(CameraError, match="delivered no frame"):
        loop.run()
    assert loop.metrics.camera_failures == 3 and (tmp_path / "d.jsonl").exists()


def test_sigterm_stops_cleanly_and_the_recording_is_complete(job_files, tmp_path):
    folder, key = job_files
    images = tmp_path / "many"
    images.mkdir()
    for i in range(600):  # a minute at 10 frames per second: the signal, never the end, stops the replay
        cv2.imwrite(str(images / f"f{i:03d}.png"), np.full((32, 32, 3), i % 64 * 4, np.uint8))
        os.utime(images / f"f{i:03d}.png", ns=(i * 100_000_000, i * 100_000_000))
    process = subprocess.Popen(
        [KEYCAM, "replay", str(images), "--model", str(folder / "keyed.onnx"), "--key", str(folder / "k.key"),
         "--output", str(tmp_path / "s.jsonl"), "--record", str(tmp_path / "s.mcap"), "--realtime"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60  # wait for some results, however slowly this machine starts keycam
    while time.monotonic() < deadline:
        path = tmp_path / "s.jsonl"
        if path.exists() and len(path.read_text().splitlines()) >= 5:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)  # hang protection only
    assert process.returncode == 143, stderr  # 128 + SIGTERM, as shells report a stop by signal
    assert "stopped by SIGTERM" in stderr
    results = _results(tmp_path / "s.jsonl")
    assert 5 <= len(results) < 600
    assert frame_count(tmp_path / "s.mcap") == len(results)  # the official reader: a finished file, every frame


def test_keycam_run_without_configuration_runs_the_embedded_default(tmp_path):
    """The keyed face detector over the photos that ship in scikit-image: the astronaut's and the cameraman's
    faces are found, in the photos' own pixels (512 x 512), and the coffee, the rocket and the galaxies have none."""
    done = run("run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    faces = {r["origin"]: r["outputs"]["counts"].get("face", 0) for r in lines}
    assert faces == {"astronaut.png": 1, "camera.png": 1, "coffee.png": 0, "rocket.jpg": 0,
                     "hubble_deep_field.jpg": 0}
    (astronaut,) = lines[0]["outputs"]["detections"]
    x0, y0, x1, y1 = astronaut["box"]
    assert astronaut["class"] == "face" and 150 < x0 < x1 < 300 and 50 < y0 < y1 < 230  # her face, top middle
    folder = places.default_folder()  # the session's (tests/conftest.py), never the working directory
    assert "fps" in done.stderr and (folder / "default.key").exists() and not (tmp_path / "keycam-demo").exists()
    assert done.stderr.count(f"models are in '{folder}'") == 1  # it says where, once
    assert run("run", "--max-frames", "2", cwd=tmp_path).stdout.count("\n") == 2
    drawn = run("preview", "-o", "p.png", "--frames", "5", cwd=tmp_path)  # scripts/run.sh's last step
    assert drawn.returncode == 0 and "PLAIN frames" in drawn.stderr, drawn.stderr
    strip = cv2.imread(str(tmp_path / "p.png"))  # a caption bar of 28 rows, then five rows of 160-pixel tiles
    assert strip.shape[0] == 28 + 5 * 160
    green = np.all(strip == (0, 255, 0), axis=2)  # the boxes' colour
    measurement = [green[28 + 160 * row:28 + 160 * (row + 1), 160:320].sum() for row in range(5)]
    assert measurement[0] > 100 and measurement[1] > 100 and max(measurement[2:]) < 10  # boxes over the noise


def test_the_fashion_mnist_frames_without_a_model_run_through_keycams_own_cnn(tmp_path):
    config = tmp_path / "fashion.toml"
    config.write_text('[source]\nkind = "fashion-mnist"\n')
    done = run("run", "--config", config, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 20 and all(r["origin"].startswith("fashionMNIST_") for r in lines)
    answers = [next(iter(r["outputs"].values())) for r in lines]
    right = sum(a["label"] == int(r["origin"].split("_")[2].split(".")[0]) for a, r in zip(answers, lines))
    assert right >= 17 and all(isinstance(a["class"], str) for a in answers)  # a trained model's labels


def test_configuration_files(tmp_path):
    example = Path(__file__).resolve().parents[2] / "deploy" / "keycam.toml"
    assert load_config(example).source.kind == "picamera"  # the shipped example is valid
    good = tmp_path / "good.toml"
    good.write_text(f'[source]\nkind = "folder"\npath = "{tmp_path}"\n[loop]\nqueue = 8\n')  # run needs the folder
    assert load_config(good).loop.queue == 8
    assert run("validate-config", good).returncode == 0
    cases = {
        '[source]\nkind = "folder"\npath = "x"\nkinds = 1\n': "unknown key 'source.kinds' (allowed here: kind, path, "
                                                              "pattern)",
        '[source]\npath = "x"\n': "source.kind is missing; use one of recording, folder",
        '[source]\nkind = "opencv"\ncamera = 0\nurl = "rtsp://x"\n': "set exactly one of source.camera",
        '[output]\nresults = "-"\n': "[output] is now [results]",
        '[loop]\nqueue = 0\n': "loop.queue = 0",
        '[source]\nkind = "webcam"\n': "source.kind = 'webcam'",
        '[camera]\nx = 1\n': "unknown key 'camera'",
        'source = [': "not valid TOML",
    }
    for text, fragment in cases.items():
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_config(bad)
        assert fragment in str(caught.value) and "bad.toml" in str(caught.value)
        done = run("validate-config", bad)
        assert done.returncode == 1 and fragment in done.stderr


def test_plain_frames_are_recorded_only_with_the_debug_flag(job_files, tmp_path):
    from edge.config import Config
    from edge.job import build_job
    from edge.recording import PLAIN_TOPIC, read_recording

    folder, _ = job_files
    config = Config()
    config.source = VideoConfig(path=str(folder / "clip.avi"))
    config.model.path, config.model.key = str(folder / "keyed.onnx"), str(folder / "k.key")
    config.results.path = str(tmp_path / "r.jsonl")
    config.record.path = str(tmp_path / "plain.mcap")
    config.record.plain_debug = True
    job = build_job(config)
    CaptureLoop(job.source, job.pipeline, job.sinks).run()
    plain = list(read_recording(tmp_path / "plain.mcap", topic=PLAIN_TOPIC))
    assert len(plain) == 12 and plain[0].image.shape == (32, 32, 3)
    config.record.path = ""
    with pytest.raises(ConfigError, match="record.plain_debug needs record.path"):
        build_job(config)
    config.record.path, config.record.plain_debug = str(tmp_path / "private.mcap"), False
    job = build_job(config)
    CaptureLoop(job.source, job.pipeline, job.sinks).run()
    assert list(read_recording(tmp_path / "private.mcap", topic=PLAIN_TOPIC)) == []


def test_record_preview_and_the_metrics_endpoint(job_files, tmp_path):
    import urllib.request

    from edge.config import Config
    from edge.job import build_job
    from edge.metrics import MetricsServer

    folder, _ = job_files
    done = run("record", tmp_path / "r.mcap", "--max-frames", "5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert frame_count(tmp_path / "r.mcap") == 5
    shown = run("preview", tmp_path / "r.mcap", "-o", tmp_path / "p.png", "--frames", "3", "--key",
                places.default_folder() / "default.key", cwd=tmp_path)
    assert shown.returncode == 0 and "PLAIN" in shown.stderr, shown.stderr
    assert cv2.imread(str(tmp_path / "p.png")).shape[0] > 3 * 150  # three rows of tiles

    config = Config()
    config.source = VideoConfig(path=str(folder / "clip.avi"))
    config.model.path, config.model.key = str(folder / "keyed.onnx"), str(folder / "k.key")
    config.results.path = str(tmp_path / "m.jsonl")
    job = build_job(config)
    server = MetricsServer("127.0.0.1", 0)
    try:
        CaptureLoop(job.source, job.pipeline, job.sinks, metrics_server=server).run()
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
    finally:
        server.close()
    assert "keycam_frames_total 12.0" in text and "keycam_up 1.0" in text
    assert 'keycam_stage_seconds_count{stage="model"} 12.0' in text


def test_a_recording_made_with_another_key_is_refused(job_files, tmp_path):
    folder, _ = job_files
    done = run("replay", folder / "clip.avi", "--model", folder / "keyed.onnx", "--key", folder / "k.key",
               "--output", tmp_path / "x.jsonl", "--record", tmp_path / "x.mcap")
    assert done.returncode == 0, done.stderr
    refused = run("replay", tmp_path / "x.mcap", "--output", tmp_path / "y.jsonl", cwd=tmp_path)  # the default model
    assert refused.returncode == 1 and "was measured with key" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
