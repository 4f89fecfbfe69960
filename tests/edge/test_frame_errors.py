"""One per-frame error policy: a frame that fails in any stage of the loop (the readout at capture, the keyed model,
the answer) is counted, logged in one line, and skipped; with `on_frame_error = "stop"` the run ends with that error
and says so. Nothing else is lost: the other frames are answered, in order."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from edge.config import Config
from edge.errors import FrameError
from edge.frame import Result
from edge.job import build_job
from edge.loop import CaptureLoop
from edge.runtime import KeyedModel
from edge.sensor import Readout
from edge.sinks.results import ResultsSink
from edge.sources.base import Source
from edge.sources.recording import RecordingConfig
from edge.sources.virtual import VirtualSensor
from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from export.zoo import CIFAR_MEAN, CIFAR_STD, resnet20


class _Frames(Source):
    """Six 32 x 32 frames; frame 1 has two channels, which no RGB sensor reads out."""

    channel_order = "bgr"

    def _open(self) -> None:
        self._n = 0

    def _read(self):
        if self._n >= 6:
            return None
        self._n += 1
        channels = 2 if self._n == 2 else 3
        return self._frame(np.full((32, 32, channels), 10 * self._n, np.uint8), self._n, f"f{self._n - 1}")


class _Failing:
    """The pipeline, but the model stage fails on frame 3 and the answer stage on frame 4."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline

    def front(self, frame):
        if frame.sequence == 3:
            raise FrameError("the model could not take it")
        return self.pipeline.front(frame)

    def back(self, result: Result):
        if result.sequence == 4:
            raise FrameError("the answer could not be made")
        return self.pipeline.back(result)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import hashlib

    from firmware_sim.keys import MasterKey

    key = MasterKey(hashlib.sha256(b"keycam tests").digest())
    path = tmp_path_factory.mktemp("errors") / "keyed.onnx"
    save(keyify(resnet20(), key, KeyifyOptions(mean=CIFAR_MEAN, std=CIFAR_STD)), path)
    return KeyedModel(path, key), key


def _loop(model, key, tmp_path, policy: str) -> CaptureLoop:
    from edge.pipeline import Pipeline

    sensor = VirtualSensor(_Frames(), Readout.for_model(model.manifest, key, source_order="bgr"))
    return CaptureLoop(sensor, _Failing(Pipeline(model, key)), [ResultsSink(tmp_path / "r.jsonl")],
                       on_frame_error=policy)


def test_a_frame_that_fails_in_any_stage_is_counted_logged_and_skipped(model, tmp_path, caplog):
    keyed, key = model
    with caplog.at_level(logging.WARNING, logger="edge.loop"):
        metrics = _loop(keyed, key, tmp_path, "skip").run()
    answered = [json.loads(line)["sequence"] for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert answered == [0, 2, 5] and metrics.frames == 3 and metrics.errors == 3
    assert metrics.stopped_by == "end of source"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and all("\n" not in line and "frame skipped" in line for line in lines)
    assert "frame 1 (f1)" in lines[0] and "frame 3: the model" in lines[1] and "frame 4: the answer" in lines[2]


def test_on_frame_error_stop_ends_the_run_with_the_error(model, tmp_path):
    keyed, key = model
    loop = _loop(keyed, key, tmp_path, "stop")
    with pytest.raises(FrameError, match="frame 1"):
        loop.run()
    assert loop.metrics.errors == 1 and loop.metrics.stopped_by == "error"


def test_a_recording_whose_frames_change_shape_skips_the_odd_frame(model, tmp_path):
    """The model refuses a frame of another size: that frame's error, not the run's (the rest are replayed)."""
    from edge.recording import Recorder

    keyed, key = model
    with Recorder(tmp_path / "r.mcap", keyed.manifest.spec, key.fingerprint) as recorder:
        for i, size in enumerate((32, 32, 24, 32)):
            recorder.write(np.full((size, size, 3), i, np.uint8), 0, i, i * 1000)
    key.save(tmp_path / "k.key")
    config = Config()
    config.source = RecordingConfig(path=tmp_path / "r.mcap")
    config.model.path, config.model.key = str(keyed.path), str(tmp_path / "k.key")
    config.results.path = str(tmp_path / "out.jsonl")
    summary = build_job(config, replay=True).run()
    answered = [json.loads(line)["sequence"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert answered == [0, 1, 3] and summary["errors"] == 1 and summary["frames"] == 3
