"""The MQTT sink against a real broker (Debian's mosquitto, started here on 127.0.0.1 with a free port), on the shipped
face detector's answers (no tracking): counts published on change and equal to the results file, answers only when
asked, a broker restart mid-run (no crash, every frame counted, the retained states there again), credentials from a
private file. Discovery: test_mqtt_discovery.py; switches: test_mqtt_switches.py; events and message rates:
test_mqtt_rate.py."""

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
        self.retained: dict[str, str] = {}  # the last retained payload of each topic, as the broker sent it
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"listener-{port}")
        self.client.on_connect = lambda c, *_: [c.subscribe(t, qos=1) for t in topics]
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.setdefault(message.topic, []).append(message.payload.decode())
            if message.retain:
                self.retained[message.topic] = message.payload.decode()

    def get(self, topic: str) -> list[str]:
        with self.lock:
            return list(self.messages.get(topic, []))

    def count(self) -> int:
        with self.lock:
            return sum(len(found) for found in self.messages.values())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(port: int, topics: tuple[str, ...] = ("#",)) -> dict[str, str]:
    """What the broker holds retained (a new subscriber's view): topic -> payload."""
    listener = Listener(port, topics)
    try:
        time.sleep(0.5)  # retained messages come right after the subscription
        with listener.lock:
            return dict(listener.retained)
    finally:
        listener.close()


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


def wait(condition, seconds=60.0):  # hang protection only
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def mqtt_sink(job):
    return next(s for s in job.sinks if type(s).__name__ == "MqttSink")


def connected(job):
    """The job's MQTT sink, started and connected (so that what a run publishes comes after the connect's)."""
    sink = mqtt_sink(job)
    sink.start()
    wait(lambda: sink.stats.connects >= 1 and sink.client.is_connected())
    return sink


def _changes(values: list[str], first: str = "0") -> list[str]:
    found, last = [first], first
    for value in values:
        if value != last:
            found.append(value)
            last = value
    return found


def test_counts_are_published_on_change_only_and_equal_the_results_file(broker, faces, tmp_path):
    from edge.job import build_job

    listener = Listener(broker.port)
    try:
        job = build_job(_config(faces, tmp_path, broker.port), replay=True)
        sink = connected(job)
        job.run()
        wait(lambda: listener.get("keycam/cam1/availability")[-1:] == ["offline"])
    finally:
        listener.close()
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    counts = [str(r["outputs"]["counts"].get("face", 0)) for r in results]
    assert "1" in counts and "0" in counts and len(counts) == 30
    assert listener.get("keycam/cam1/face") == _changes(counts)  # 0 at connect, then each change, nothing else
    assert listener.get("keycam/cam1/answer") == []  # no per-frame answers unless asked
    assert not [t for t in listener.messages if t.startswith("keycam/cam1/") and t.endswith("/active")]  # untracked
    stats = sink.stats
    assert stats.frames == 30 and stats.states == len(_changes(counts)) - 1 and stats.events == stats.dropped == 0
    assert stats.delivered == stats.published  # every message acknowledged (QoS 1)


def test_answers_are_published_per_frame_only_when_asked(broker, faces, tmp_path):
    from edge.job import build_job

    listener = Listener(broker.port, ("keycam/cam1/answer",))
    try:
        job = build_job(_config(faces, tmp_path, broker.port, answers=True), replay=True)
        connected(job)
        job.run()
        wait(lambda: len(listener.get("keycam/cam1/answer")) == 30)
    finally:
        listener.close()
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    answers = [json.loads(payload) for payload in listener.get("keycam/cam1/answer")]
    assert [a["outputs"] for a in answers] == [r["outputs"] for r in results]  # what the results file says
    assert mqtt_sink(job).stats.answers == 30


def test_a_broker_restart_mid_run_crashes_nothing_and_every_frame_is_counted(broker, faces, tmp_path):
    from edge.job import build_job

    config = _config(faces, tmp_path, broker.port, queue=50)
    config.loop.realtime = True  # 30 frames, 0.2 s apart: 6 s of camera
    job = build_job(config, replay=True)
    runner = threading.Thread(target=job.run, daemon=True)
    runner.start()
    sink = mqtt_sink(job)
    wait(lambda: sink.stats.frames >= 5 and sink.stats.delivered >= 3)
    broker.stop()  # the broker goes away mid-run, and its retained messages with it (no persistence) ...
    time.sleep(1.0)
    broker.start()  # ... and comes back on the same port
    runner.join(timeout=60)
    assert not runner.is_alive() and job.last_summary["frames"] == 30  # capture never waited for the broker
    stats = sink.stats
    assert stats.frames == 30 and stats.connects >= 2 and stats.delivered <= stats.published
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 30  # the results file has every frame, whatever the broker did
    last = str(json.loads(lines[-1])["outputs"]["counts"].get("face", 0))
    held = retained(broker.port)  # the reconnect published every state again: the broker has them back
    assert held["keycam/cam1/face"] == last and held["keycam/cam1/availability"] == "offline"
    assert "homeassistant/sensor/cam1/face_count/config" in held


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
        sink = connected(job)
        job.run()
        assert sink.stats.connects == 1 and sink.stats.delivered == sink.stats.published > 10
        (tmp_path / "pw").write_text("wrong\n")
        job = build_job(_config(faces, tmp_path, broker.port, username="cam", password_file=str(tmp_path / "pw")),
                        replay=True)
        job.run()  # a refused connection never holds the run up
        sink = mqtt_sink(job)
        assert sink.stats.connects == 0 and sink.stats.delivered == 0 and sink.stats.frames == 30
    finally:
        broker.stop()


class _Owned:
    """A lock that knows which thread holds it."""

    def __init__(self) -> None:
        self.lock, self.owner = threading.Lock(), None

    def __enter__(self):
        self.lock.acquire()
        self.owner = threading.get_ident()
        return self

    def __exit__(self, *exc) -> None:
        self.owner = None
        self.lock.release()

    def locked(self) -> bool:
        return self.lock.locked()

    def mine(self) -> bool:
        return self.owner == threading.get_ident()


def test_the_sink_never_holds_its_lock_while_paho_publishes(broker, faces, tmp_path):
    """paho's network thread acknowledges (on_publish) while holding its own message lock, which publish()
    takes too: a sink that published under its own lock deadlocked with it once in a while (seen: a run that
    never ended). Every publish here, from either thread, runs with none of the sink's locks held by its caller."""
    from edge.job import build_job

    job = build_job(_config(faces, tmp_path, broker.port, answers=True), replay=True)
    sink = mqtt_sink(job)
    sink._lock, sink.states._lock = _Owned(), _Owned()
    publish, held = sink.client.publish, []

    def checked(*args, **kwargs):
        held.append(sink._lock.mine() or sink.states._lock.mine())
        return publish(*args, **kwargs)

    sink.client.publish = checked
    job.run()
    assert len(held) > 30 and not any(held)  # answers, states, discovery, availability
    assert sink.stats.answers == 30
