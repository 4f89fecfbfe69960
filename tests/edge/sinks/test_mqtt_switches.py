"""The run's switches (edge.switches): detection and recording on and off, from Home Assistant's switch entities over
MQTT (`<base>/detect/set`, `<base>/recordings/set`, ON / OFF; retained `.../state`) on a real mosquitto, each one
switching a real run, and what the capture loop does with them: no model and no answer while detection is off (the
recorder still records), nothing to the recorder while recording is off."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.frame import Result
from edge.loop import CaptureLoop
from edge.sinks.base import Sink
from edge.sources.base import Source
from edge.switches import Switches
from tests.edge.sinks.test_mqtt import (  # noqa: F401 - the broker and the keyed face detector fixtures
    Listener, _config, broker, connected, faces, mqtt_sink, retained, wait)


def test_switches_are_set_by_name_or_by_command_and_tell_who_watches():
    switches, heard = Switches(), []
    switches.watch(lambda name, on: heard.append((name, on)))
    assert switches.detect and switches.recordings and switches.offered == ("detect",)
    assert switches.set("detect", False) and not switches.set("detect", False)  # changed once
    assert switches.command("recordings", " off ") is False and switches.command("detect", "ON") is True
    assert switches.command("detect", "toggle") is None and switches.detect  # neither ON nor OFF: ignored
    assert heard == [("detect", False), ("recordings", False), ("detect", True)] and switches.changes == 3
    switches.offer("recordings")
    assert switches.offered == ("detect", "recordings") and switches.state() == {"detect": True, "recordings": False}
    with pytest.raises(ValueError, match="no switch named 'snapshots'"):
        switches.set("snapshots", True)


class _Frames(Source):
    """Eight measured frames."""

    measured = True

    def _open(self) -> None:
        pass

    def _read(self):
        if self._sequence >= 8:
            return None
        return self._frame(np.zeros((4, 4, 1), np.uint8), self._sequence * 1000, "switches", measured=True)


class _Pipeline:
    def __init__(self) -> None:
        self.fronts = self.backs = 0

    def front(self, frame):
        self.fronts += 1
        return Result(frame)

    def back(self, result):
        self.backs += 1
        result.outputs = {"answered": True}
        return result


class _Kept(Sink):
    def __init__(self, role: str) -> None:
        self.role, self.results = role, []

    def write(self, result):
        self.results.append(result)


def _run(switches: Switches | None):
    pipeline, answers, recorder = _Pipeline(), _Kept("answers"), _Kept("frames")
    loop = CaptureLoop(_Frames(), pipeline, [answers, recorder], switches=switches)
    loop.run()
    return pipeline, answers.results, recorder.results, loop.metrics


def test_the_loop_skips_the_model_and_the_answer_while_detection_is_off_and_the_recorder_while_recording_is():
    pipeline, answered, recorded, metrics = _run(None)  # no switches: both on
    assert pipeline.fronts == pipeline.backs == len(answered) == len(recorded) == 8 and metrics.undetected == 0
    pipeline, answered, recorded, metrics = _run(Switches(detect=False))
    assert pipeline.fronts == pipeline.backs == 0 and answered == [] and metrics.undetected == metrics.frames == 8
    assert [r.sequence for r in recorded] == list(range(8)) and all(r.outputs == {} for r in recorded)
    assert metrics.summary()["undetected"] == 8
    pipeline, answered, recorded, metrics = _run(Switches(recordings=False))
    assert pipeline.backs == len(answered) == 8 and recorded == []
    pipeline, answered, recorded, metrics = _run(Switches(detect=False, recordings=False))
    assert answered == recorded == [] and metrics.frames == 8


def test_home_assistant_turns_detection_off_over_mqtt_and_records_without_answering(broker, faces,  # noqa: F811
                                                                                     tmp_path):
    from edge.job import build_job
    from edge.recording import frame_count

    config = _config(faces, tmp_path, broker.port)
    config.record.path = str(tmp_path / "m.mcap")
    job = build_job(config, replay=True)
    assert job.switches.offered == ("detect", "recordings")  # the run records: recording can be switched
    sink = connected(job)
    switch = json.loads(sink.configs["homeassistant/switch/cam1/detect/config"])
    assert switch["command_topic"] == "keycam/cam1/detect/set" and switch["state_topic"] == "keycam/cam1/detect/state"
    assert "homeassistant/switch/cam1/recordings/config" in sink.configs
    listener = Listener(broker.port, ("keycam/cam1/+/state",))
    try:
        wait(lambda: listener.get("keycam/cam1/detect/state") == ["ON"])
        listener.client.publish("keycam/cam1/detect/set", "OFF", qos=1).wait_for_publish(5)  # the switch in HA
        wait(lambda: not job.switches.detect)
        wait(lambda: listener.get("keycam/cam1/detect/state") == ["ON", "OFF"])
        job.run()
    finally:
        listener.close()
    assert (tmp_path / "results.jsonl").read_text() == ""  # nothing answered ...
    assert frame_count(tmp_path / "m.mcap") == 30 and job.last_summary["undetected"] == 30  # ... everything recorded
    assert sink.stats.commands == 1 and sink.stats.frames == 0
    held = retained(broker.port, ("keycam/cam1/#",))
    assert held["keycam/cam1/detect/state"] == "OFF" and held["keycam/cam1/recordings/state"] == "ON"


def test_a_run_without_a_recorder_offers_no_recording_switch(broker, faces, tmp_path):  # noqa: F811
    from edge.job import build_job

    job = build_job(_config(faces, tmp_path, broker.port), replay=True)
    assert job.switches.offered == ("detect",)
    sink = mqtt_sink(job)
    assert [t for t in sink.configs if "/switch/" in t] == ["homeassistant/switch/cam1/detect/config"]


def test_home_assistant_turns_recording_off_over_mqtt_and_the_run_answers_without_recording(broker, faces,  # noqa: F811
                                                                                          tmp_path):
    from edge.job import build_job
    from edge.recording import frame_count

    config = _config(faces, tmp_path, broker.port)
    config.record.path = str(tmp_path / "m.mcap")
    job = build_job(config, replay=True)
    sink = connected(job)
    listener = Listener(broker.port, ("keycam/cam1/recordings/state",))
    try:
        wait(lambda: listener.get("keycam/cam1/recordings/state") == ["ON"])
        listener.client.publish("keycam/cam1/recordings/set", "off", qos=1).wait_for_publish(5)
        wait(lambda: not job.switches.recordings and job.switches.detect)
        wait(lambda: listener.get("keycam/cam1/recordings/state") == ["ON", "OFF"])
        job.run()
    finally:
        listener.close()
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 30  # every frame answered ...
    assert frame_count(tmp_path / "m.mcap") == 0  # ... none recorded
    assert sink.stats.commands == 1 and sink.stats.frames == 30
    assert retained(broker.port, ("keycam/cam1/#",))["keycam/cam1/recordings/state"] == "OFF"
