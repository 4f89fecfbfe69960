"""``[mqtt]``: each frame's answer, per-class counts and occupancy to an MQTT broker, with Home Assistant discovery.

Topics, under ``base = <topic_prefix>/<device_id>`` (``keycam/<host name>`` by default)::

    base/availability            "online" / "offline" (retained; the broker publishes "offline" as the last will)
    base/answer                  every frame's answer as JSON (sequence, timestamp_ns, origin, outputs)
    base/<class>/count           the frame's count of that class (retained)
    base/<class>/occupancy       "ON" while the count is above zero, "OFF" otherwise (retained)

and, unless ``discovery = false``, Home Assistant's MQTT discovery (retained, at connect): for each class
an occupancy binary sensor (``<prefix>/binary_sensor/<node>/<class>_occupancy/config``) and a count sensor
(``<prefix>/sensor/<node>/<class>_count/config``), both with the availability topic and one device.

The sink never blocks capture: publishing only queues (paho-mqtt's own network thread sends, reconnecting
with backoff from ``reconnect_min_s`` to ``reconnect_max_s``); at most ``queue`` messages wait, and what
does not fit, or cannot be queued while the broker is away, is dropped and counted. Every frame is
counted as ``published`` (its answer queued), or ``dropped``; ``delivered`` counts the answers the broker
acknowledged (QoS 1). Credentials come from a file of mode 0600; TLS is optional. Only answers leave:
no frame, no measurement.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from edge.credentials import read_token
from edge.errors import ConfigError
from edge.frame import Result
from edge.sinks.base import Sink, SinkConfig, SinkContext

log = logging.getLogger(__name__)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "class"


@dataclass
class MqttStats:
    frames: int = 0
    published: int = 0  # answers queued for the broker
    dropped: int = 0  # answers that could not be queued (queue full, broker away at QoS 0)
    delivered: int = 0  # answers the broker acknowledged
    connects: int = 0


class MqttSink(Sink):
    def __init__(self, settings: MqttConfig, classes: list[str], device_id: str) -> None:
        import paho.mqtt.client as mqtt  # the `mqtt` extra; only this sink needs it

        self.settings, self.classes, self.device_id = settings, classes, device_id
        self.base = f"{settings.topic_prefix.rstrip('/')}/{device_id}"
        self.stats = MqttStats()
        self._answers: set[int] = set()  # message ids of the answers, to count their acknowledgements
        self._unmatched: OrderedDict[int, None] = OrderedDict()  # acknowledged ids not (yet) known as answers
        # Never held while calling paho: paho's network thread calls _acknowledged holding its own message lock,
        # which publish() takes too, so holding this one across publish() would be a lock-order deadlock.
        self._lock = threading.Lock()
        self._mqtt = mqtt
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=settings.client_id or f"keycam-{device_id}")
        client.max_queued_messages_set(settings.queue)
        client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)
        client.will_set(self.base + "/availability", "offline", qos=1, retain=True)
        if settings.username:
            password = read_token(settings.password_file) if settings.password_file else None
            client.username_pw_set(settings.username, password)
        if settings.tls:
            client.tls_set(ca_certs=settings.ca_file or None)
        client.on_connect = self._connected
        client.on_publish = self._acknowledged
        self.client = client
        self._started = False

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        try:  # the first connection in the background too: a broker that is away never holds the run up
            self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive)
        except (OSError, ValueError) as error:
            raise ConfigError(f"mqtt.host {self.settings.host!r}:{self.settings.port} cannot be used ({error})") \
                from None
        self.client.loop_start()

    # -- paho's network thread --------------------------------------------------------------------------------

    def _connected(self, client, userdata, flags, reason, properties=None) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s:%d refused the connection: %s", self.settings.host, self.settings.port,
                        reason)
            return
        self.stats.connects += 1
        client.publish(self.base + "/availability", "online", qos=1, retain=True)
        if self.settings.discovery:
            for topic, payload in self.discovery():
                client.publish(topic, json.dumps(payload, sort_keys=True), qos=1, retain=True)

    UNMATCHED = 4096  # acknowledgements of other messages (counts, occupancy, discovery) kept to match against

    def _acknowledged(self, client, userdata, mid, reason=None, properties=None) -> None:
        with self._lock:
            if mid in self._answers:
                self._answers.discard(mid)
                self.stats.delivered += 1
            else:  # another message's, or an answer's that came back before write() could note its id
                self._unmatched[mid] = None
                if len(self._unmatched) > self.UNMATCHED:
                    self._unmatched.popitem(last=False)

    # -- what is published --------------------------------------------------------------------------------------

    def discovery(self) -> list[tuple[str, dict]]:
        """Home Assistant's discovery messages: per class an occupancy binary sensor and a count sensor."""
        node = _slug(self.device_id)
        device = {"identifiers": [f"keycam_{node}"], "name": f"keycam {self.device_id}", "manufacturer": "keycam",
                  "model": "privacy-preserving camera"}
        prefix = self.settings.discovery_prefix.rstrip("/")
        found = []
        for name in self.classes:
            slug = _slug(name)
            common = {"availability_topic": self.base + "/availability", "device": device}
            found.append((f"{prefix}/binary_sensor/{node}/{slug}_occupancy/config", common | {
                "name": f"{name} occupancy", "unique_id": f"keycam_{node}_{slug}_occupancy", "device_class":
                "occupancy", "state_topic": f"{self.base}/{slug}/occupancy", "payload_on": "ON", "payload_off": "OFF"}))
            found.append((f"{prefix}/sensor/{node}/{slug}_count/config", common | {
                "name": f"{name} count", "unique_id": f"keycam_{node}_{slug}_count", "state_class": "measurement",
                "state_topic": f"{self.base}/{slug}/count"}))
        return found

    def _publish(self, topic: str, payload: str, retain: bool = False) -> int | None:
        info = self.client.publish(topic, payload, qos=self.settings.qos, retain=retain)
        return info.mid if info.rc == self._mqtt.MQTT_ERR_SUCCESS else None

    def write(self, result: Result) -> None:
        self.start()
        self.stats.frames += 1
        frame = result.frame
        answer = {"sequence": frame.sequence, "timestamp_ns": frame.timestamp_ns, "origin": frame.origin,
                  "outputs": result.outputs}
        mid = self._publish(self.base + "/answer", json.dumps(answer, sort_keys=True))
        with self._lock:
            if mid is None:
                self.stats.dropped += 1
            else:
                self.stats.published += 1
                if not self.settings.qos:
                    self.stats.delivered += 1
                elif self._unmatched.pop(mid, False) is None:  # acknowledged already, between publish and here
                    self.stats.delivered += 1
                else:
                    self._answers.add(mid)
        counts = result.outputs.get("counts")
        if isinstance(counts, dict):
            for name in self.classes:
                slug, count = _slug(name), int(counts.get(name, 0))
                self._publish(f"{self.base}/{slug}/count", str(count), retain=True)
                self._publish(f"{self.base}/{slug}/occupancy", "ON" if count else "OFF", retain=True)

    # -- the run's end ------------------------------------------------------------------------------------------

    def close(self) -> None:
        if not self._started:
            return
        if self.client.is_connected():
            self.client.publish(self.base + "/availability", "offline", qos=1, retain=True).wait_for_publish(2.0)
        self.client.disconnect()
        self.client.loop_stop()

    def summary(self) -> str:
        stats = self.stats
        return (f"mqtt {self.settings.host}:{self.settings.port} ({self.base}): {stats.frames} frames, "
                f"{stats.published} published, {stats.delivered} acknowledged, {stats.dropped} dropped")

    def watch(self, metrics) -> None:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        sink = self

        class _Collector:
            def collect(self):
                for name in ("published", "dropped", "delivered"):
                    yield CounterMetricFamily(f"keycam_mqtt_{name}", f"answers {name} (MQTT)",
                                              value=getattr(sink.stats, name))
                yield GaugeMetricFamily("keycam_mqtt_connected", "1 while the broker is connected",
                                        value=1.0 if sink.client.is_connected() else 0.0)

        metrics.registry.register(_Collector())


class MqttConfig(SinkConfig):
    """``[mqtt]``: publish the answers to an MQTT broker (Home Assistant discovery included)."""

    host: str = Field(default="", description="the broker's host name or address (empty: no MQTT)")
    port: int = Field(default=1883, ge=1, le=65535, description="the broker's TCP port (8883 for TLS, usually)")
    topic_prefix: str = Field(default="keycam", min_length=1, description="topics are <prefix>/<device_id>/...")
    device_id: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]*$", description="this camera's name in topics "
                                                                                   "(empty: the host name)")
    client_id: str = Field(default="", description="the MQTT client id (empty: keycam-<device_id>)")
    username: str = Field(default="", description="user name at the broker (empty: anonymous)")
    password_file: str = Field(default="", description="the password, in a file of mode 0600 (unit: path)")
    tls: bool = Field(default=False, description="connect over TLS")
    ca_file: str = Field(default="", description="TLS: the CA certificates to trust (empty: the system's)")
    qos: Literal[0, 1] = Field(default=1, description="QoS of the answers (1: acknowledged by the broker)")
    discovery: bool = Field(default=True, description="publish Home Assistant MQTT discovery at connect")
    discovery_prefix: str = Field(default="homeassistant", min_length=1, description="Home Assistant's prefix")
    classes: list[str] = Field(default_factory=list, description="classes with count and occupancy topics "
                                                                 "(empty: every class the model names)")
    queue: int = Field(default=1000, ge=1, le=1_000_000, description="messages waiting for the broker, at most "
                                                                     "(the rest are dropped and counted)")
    keepalive: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive, seconds")
    reconnect_min_s: int = Field(default=1, ge=1, le=3600, description="first reconnect delay, seconds (doubles)")
    reconnect_max_s: int = Field(default=60, ge=1, le=3600, description="longest reconnect delay, seconds")

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError(f"mqtt.reconnect_min_s ({self.reconnect_min_s}) is larger than mqtt.reconnect_max_s "
                             f"({self.reconnect_max_s})")
        if self.password_file and not self.username:
            raise ValueError("mqtt.password_file is set but mqtt.username is not; name the user")
        if self.ca_file and not self.tls:
            raise ValueError("mqtt.ca_file is set but mqtt.tls is false; set tls = true")
        return self

    def build(self, context: SinkContext) -> Sink | None:
        if not self.host:
            return None
        try:
            import paho.mqtt  # noqa: F401
        except ImportError:
            raise ConfigError("[mqtt] needs paho-mqtt: pip install 'keycam[mqtt]'") from None
        labels = list(context.labels)
        classes = self.classes or labels
        if self.classes and labels:
            unknown = [name for name in self.classes if name not in labels]
            if unknown:
                raise ConfigError(f"mqtt.classes names {unknown}, which the model does not detect (it names "
                                  f"{labels[:10]}{' ...' if len(labels) > 10 else ''})")
        return MqttSink(self, classes, self.device_id or socket.gethostname())
