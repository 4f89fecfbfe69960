"""The MQTT sink against a real broker (Debian's mosquitto, started here on 127.0.0.1 with a free port): Home
Assistant discovery, counts that match the results file, and a broker restart mid-run with no crash and the
counters accounting for every frame."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.edge.servers import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Broker:
    """mosquitto on 127.0.0.1:port, anonymous, no persistence; stop() and start() again on the same port."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> Broker:
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        import socket

        deadline = time.monotonic() + 60  # hang protection only
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                assert time.monotonic() < deadline and self.process.poll() is None, "mosquitto did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class Listener:
    """A subscriber that keeps every message (topic -> list of payloads), retained ones included."""

    def __init__(self, port: int, topics: tuple[str, ...] = ("#",)) -> None:
        import paho.mqtt.client as mqtt

        self.messages: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"listener-{port}")
        self.client.on_connect = lambda c, *_: [c.subscribe(t, qos=1) for t in topics]
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.setdefault(message.topic, []).append(message.payload.decode())

    def get(self, topic: str) -> list[str]:
        with self.lock:
            return list(self.messages.get(topic, []))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path):
    if not Path(MOSQUITTO).exists():
        pytest.skip("Debian's mosquitto is not installed (scripts/setup-venv.sh installs it)")
    running = Broker(tmp_path).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """The face detector keyed, and a folder of photos (two with faces, one without), 0.2 s apart."""
    import os

    import cv2

    from edge.errors import ModelError
    from edge.faces import MEAN, SPEC, STD, face_model
    from edge.lab.demo import shipped_photo
    from export.keyify import KeyifyOptions, keyify
    from export.package.save import save
    from firmware_sim.keys import MasterKey

    try:
        detector = face_model()
    except ModelError as error:
        pytest.skip(str(error))
    folder = tmp_path_factory.mktemp("mqtt")
    key = MasterKey.generate()
    key.save(folder / "k.key")
    save(keyify(detector, key, KeyifyOptions(spec=SPEC, mean=MEAN, std=STD, policy="boundary")), folder / "face.onnx")
    photos = folder / "photos"
    photos.mkdir()
    names = ["astronaut", "coffee", "camera"] * 10
    for i, name in enumerate(names):
        path = photos / f"{i:02d}_{name}.png"
        cv2.imwrite(str(path), cv2.imread(str(shipped_photo(name)), cv2.IMREAD_COLOR))
        os.utime(path, ns=(i * 200_000_000, i * 200_000_000))
    return folder


def _config(faces: Path, tmp_path: Path, port: int, **mqtt):
    from edge.config import Config
    from edge.faces import task_settings
    from edge.sinks.mqtt import MqttConfig
    from edge.sources.folder import FolderConfig

    config = Config()
    config.source = FolderConfig(path=faces / "photos")
    config.model.path, config.model.key = str(faces / "face.onnx"), str(faces / "k.key")
    config.task = task_settings()
    config.results.path = str(tmp_path / "results.jsonl")
    config.mqtt = MqttConfig(host="127.0.0.1", port=port, device_id="cam1", reconnect_min_s=1, reconnect_max_s=1,
                             **mqtt)
    return config


def _wait(condition, seconds=60.0):  # hang protection only
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_answers_counts_and_home_assistant_discovery_reach_the_broker(broker, faces, tmp_path):
    from edge.job import build_job

    listener = Listener(broker.port)
    try:
        job = build_job(_config(faces, tmp_path, broker.port), replay=True)
        job.run()
        _wait(lambda: len(listener.get("keycam/cam1/answer")) == 30)
        discovery = json.loads(listener.get("homeassistant/binary_sensor/cam1/face_occupancy/config")[-1])
        count = json.loads(listener.get("homeassistant/sensor/cam1/face_count/config")[-1])
    finally:
        listener.close()
    assert discovery["device_class"] == "occupancy" and discovery["state_topic"] == "keycam/cam1/face/occupancy"
    assert discovery["availability_topic"] == "keycam/cam1/availability" and discovery["payload_on"] == "ON"
    assert count["state_topic"] == "keycam/cam1/face/count" and count["unique_id"] == "keycam_cam1_face_count"
    assert discovery["device"] == count["device"] and discovery["device"]["manufacturer"] == "keycam"
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    answers = [json.loads(payload) for payload in listener.get("keycam/cam1/answer")]
    assert [a["outputs"] for a in answers] == [r["outputs"] for r in results]  # what the results file says
    expected = [str(r["outputs"]["counts"].get("face", 0)) for r in results]
    assert listener.get("keycam/cam1/face/count") == expected and "1" in expected and "0" in expected
    assert listener.get("keycam/cam1/face/occupancy") == ["ON" if c != "0" else "OFF" for c in expected]
    assert listener.get("keycam/cam1/availability")[-1] == "offline"  # said at the end of the run
    sink = next(s for s in job.sinks if type(s).__name__ == "MqttSink")
    assert sink.stats.frames == sink.stats.published == sink.stats.delivered == 30 and sink.stats.dropped == 0


def test_a_broker_restart_mid_run_crashes_nothing_and_every_frame_is_counted(broker, faces, tmp_path):
    from edge.job import build_job

    config = _config(faces, tmp_path, broker.port, queue=50)
    config.loop.realtime = True  # 30 frames, 0.2 s apart: 6 s of camera
    job = build_job(config, replay=True)
    runner = threading.Thread(target=job.run, daemon=True)
    runner.start()
    sink = next(s for s in job.sinks if type(s).__name__ == "MqttSink")
    _wait(lambda: sink.stats.delivered >= 5)
    broker.stop()  # the broker goes away mid-run ...
    time.sleep(1.0)
    broker.start()  # ... and comes back on the same port
    runner.join(timeout=60)
    assert not runner.is_alive() and job.last_summary["frames"] == 30  # capture never waited for the broker
    stats = sink.stats
    assert stats.frames == 30 and stats.published + stats.dropped == 30 and stats.connects >= 2
    assert stats.delivered <= stats.published and stats.delivered >= 5
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 30  # the results file has every frame, whatever the broker did


def test_credentials_come_from_a_private_file_and_a_wrong_one_publishes_nothing(tmp_path, faces):
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.skip("mosquitto_passwd is not installed")
    subprocess.run([passwd, "-b", "-c", str(tmp_path / "users"), "cam", "s3cret"], check=True, capture_output=True)
    (tmp_path / "users").chmod(0o644)  # mosquitto reads it as another user on some systems
    broker = Broker(tmp_path)
    import os

    user = "user root\n" if os.geteuid() == 0 else ""  # as root, mosquitto would drop to a user who cannot read it
    broker.config.write_text(f"{user}listener {broker.port} 127.0.0.1\nallow_anonymous false\n"
                             f"password_file {tmp_path / 'users'}\npersistence false\n")
    broker.start()
    try:
        from edge.errors import ConfigError
        from edge.job import build_job

        (tmp_path / "pw").write_text("s3cret\n")
        (tmp_path / "pw").chmod(0o644)
        with pytest.raises(ConfigError, match="readable by group or others"):
            build_job(_config(faces, tmp_path, broker.port, username="cam", password_file=str(tmp_path / "pw")))
        (tmp_path / "pw").chmod(0o600)
        job = build_job(_config(faces, tmp_path, broker.port, username="cam", password_file=str(tmp_path / "pw")),
                        replay=True)
        job.run()
        sink = next(s for s in job.sinks if type(s).__name__ == "MqttSink")
        assert sink.stats.connects == 1 and sink.stats.delivered == 30
        (tmp_path / "pw").write_text("wrong\n")
        job = build_job(_config(faces, tmp_path, broker.port, username="cam", password_file=str(tmp_path / "pw")),
                        replay=True)
        job.run()  # a refused connection never holds the run up
        sink = next(s for s in job.sinks if type(s).__name__ == "MqttSink")
        assert sink.stats.connects == 0 and sink.stats.delivered == 0 and sink.stats.frames == 30
    finally:
        broker.stop()


def test_the_sink_never_holds_its_lock_while_paho_publishes(broker, faces, tmp_path):
    """paho's network thread acknowledges (on_publish) while holding its own message lock, which publish()
    takes too: a sink that published under its own lock deadlocked with it once in a while (seen: a run that
    never ended). Every publish here, the sink's own and the acknowledgements' accounting, runs unlocked."""
    from edge.job import build_job

    job = build_job(_config(faces, tmp_path, broker.port), replay=True)
    sink = next(s for s in job.sinks if type(s).__name__ == "MqttSink")
    publish, held = sink.client.publish, []

    def checked(*args, **kwargs):
        held.append(sink._lock.locked())
        return publish(*args, **kwargs)

    sink.client.publish = checked
    job.run()
    assert len(held) > 30 and not any(held)  # answers, counts, occupancy, discovery
    assert sink.stats.published == 30 and sink.stats.delivered == 30
