"""What the MQTT sink says it delivered, against a real mosquitto: messages queued while the broker is away reach it
at the connect and are counted delivered, not dropped (the judge: a subscriber whose session the broker kept);
the last will says ``offline`` when the camera's process dies; a TLS ``ca_file`` that is missing or holds no
certificate is named in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError
from edge.frame import Frame, Result
from edge.sinks import SinkContext
from edge.sinks.mqtt import MqttConfig
from tests.edge.sinks.test_mqtt import MOSQUITTO, Broker, Listener, broker, retained, wait  # noqa: F401



def _sink(port: int, **settings):
    return MqttConfig(host="127.0.0.1", port=port, device_id="cam1", reconnect_min_s=1, reconnect_max_s=1,
                      **settings).build(SinkContext(None, None, labels=("face",)))


class _Judge:
    """A subscriber with a persistent session (clean_session false, QoS 1): what is published while it is away is
    kept for it by the broker, through a restart (persistence on), and handed over when it comes back."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.port, self.messages, self.lock = port, [], threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="judge", clean_session=False)
        self.client.on_message = self._message

    def _message(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload.decode()))

    def visit(self, subscribe: bool) -> None:
        """Connect (and subscribe, the first time); the queued messages come."""
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        if subscribe:
            done = threading.Event()
            self.client.on_subscribe = lambda *_: done.set()
            self.client.subscribe([("keycam/#", 1), ("homeassistant/#", 1)])
            wait(done.is_set)

    def leave(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


def test_messages_queued_while_the_broker_is_away_are_delivered_once_and_counted_so(tmp_path):
    """Issue 26 (23): every message reached the broker exactly once while the summary said some were dropped (those
    published before the connection: paho queues them at QoS 1 and sends them at the connect)."""
    if not Path(MOSQUITTO).exists():
        pytest.skip("Debian's mosquitto is not installed (scripts/setup-venv.sh installs it)")
    mosquitto = Broker(tmp_path)  # its own, with persistence
    user = "user root\n" if os.geteuid() == 0 else ""  # as root, mosquitto drops to a user who cannot write here
    mosquitto.config.write_text(user + mosquitto.config.read_text().replace("persistence false", "persistence true\n"
                                                                       f"persistence_location {tmp_path}/"))
    mosquitto.start()
    judge = _Judge(mosquitto.port)
    judge.visit(subscribe=True)
    judge.leave()
    mosquitto.stop()  # the broker goes away (keeping the judge's session): the camera starts without it
    sink = _sink(mosquitto.port, answers=True)
    for i in range(40):  # every message waits in paho's queue
        frame = Frame(np.zeros((1, 1, 3), np.uint8), i, i * 33_000_000, "test")
        sink.write(Result(frame, outputs={"counts": {"face": int(10 <= i < 20)}}))
    assert not sink.client.is_connected() and sink.stats.dropped == 0
    assert sink.stats.answers == 40 and sink.stats.states == 3 and sink.stats.delivered == 0  # 0, 1, 0
    mosquitto.start()
    try:
        wait(lambda: sink.stats.delivered == sink.stats.published and sink.stats.connects == 1)
        sink.close()
        judge.visit(subscribe=False)
        wait(lambda: judge.count() >= sink.stats.published)
        time.sleep(0.5)  # time for a duplicate to show itself
        judge.leave()
    finally:
        mosquitto.stop()
    stats = sink.stats
    assert judge.count() == stats.published == stats.delivered and stats.dropped == 0  # each message once
    answers = [json.loads(payload)["sequence"] for topic, payload in judge.messages if topic == "keycam/cam1/answer"]
    assert answers == list(range(40))
    assert stats.published == 40 + 3 + len(sink.configs) + 3  # answers, changes; at the connect online, the configs,
    # the state topic; offline at the end
    summary = sink.summary()
    assert f"{stats.published} messages queued, {stats.published} acknowledged by the broker; 0 dropped" in summary
    assert "40 answers" in summary and "unacknowledged" not in summary


def test_qos_0_says_sent_not_acknowledged_and_counts_what_never_left(tmp_path):
    if not Path(MOSQUITTO).exists():
        pytest.skip("Debian's mosquitto is not installed (scripts/setup-venv.sh installs it)")
    mosquitto = Broker(tmp_path)  # not started yet
    sink = _sink(mosquitto.port, qos=0)
    sink.write(Result(Frame(np.zeros((1, 1, 3), np.uint8), 0, 0, "test"), outputs={"counts": {"face": 1}}))
    assert sink.stats.dropped == 1 and sink.stats.published == 0  # QoS 0 with no connection: lost, and said so
    mosquitto.start()
    try:
        wait(lambda: sink.stats.connects == 1 and sink.stats.delivered == sink.stats.published > 0)
        sink.close()
        held = retained(mosquitto.port, ("keycam/cam1/#",))
    finally:
        mosquitto.stop()
    assert held["keycam/cam1/face"] == "1"  # the state that never left went out with the connect
    summary = sink.summary()
    assert "sent to the broker" in summary and "acknowledged" not in summary and "; 1 dropped" in summary


DYING = """
import sys, time
from edge.sinks import SinkContext
from edge.sinks.mqtt import MqttConfig
sink = MqttConfig(host="127.0.0.1", port=int(sys.argv[1]), device_id="cam1").build(SinkContext(None, None,
                                                                                               labels=("face",)))
sink.start()
while not (sink.client.is_connected() and sink.stats.delivered == sink.stats.published > 0):
    time.sleep(0.05)
print("online", flush=True)
sys.stdin.read()
"""


def test_the_last_will_says_offline_when_the_cameras_process_dies(broker):  # noqa: F811
    listener = Listener(broker.port, ("keycam/cam1/availability",))
    camera = subprocess.Popen([sys.executable, "-c", DYING, str(broker.port)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[3],
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])})
    try:
        assert camera.stdout.readline().strip() == "online"
        wait(lambda: listener.get("keycam/cam1/availability") == ["online"])
        camera.kill()  # no close, no offline of its own: the broker speaks the will
        camera.wait(timeout=30)
        wait(lambda: listener.get("keycam/cam1/availability") == ["online", "offline"])
    finally:
        if camera.poll() is None:
            camera.kill()
            camera.wait(timeout=30)
        listener.close()
    assert retained(broker.port, ("keycam/cam1/availability",)) == {"keycam/cam1/availability": "offline"}


def test_a_missing_or_unreadable_ca_file_is_named_in_one_line(tmp_path):
    from tests.inprocess import keycam

    with pytest.raises(ConfigError, match=r"mqtt.ca_file '/nowhere/ca.pem' does not exist or is not a file; name "):
        _sink(8883, tls=True, ca_file="/nowhere/ca.pem")
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=rf"mqtt.ca_file '{tmp_path / 'ca.pem'}' cannot be loaded \(.+\); name "):
        _sink(8883, tls=True, ca_file=str(tmp_path / "ca.pem"))
    assert _sink(8883, tls=True).client  # no ca_file: the system's CAs
    (tmp_path / "keycam.toml").write_text('[loop]\nmax_frames = 1\n[mqtt]\nhost = "127.0.0.1"\ntls = true\n'
                                          f'ca_file = "{tmp_path / "missing.pem"}"\n')
    done = keycam("run", "--config", tmp_path / "keycam.toml")
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0
    assert f"mqtt.ca_file '{tmp_path / 'missing.pem'}' does not exist" in done.stderr
