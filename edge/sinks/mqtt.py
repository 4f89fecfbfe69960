"""``[mqtt]``: events, occupancy and switches for Home Assistant, as Frigate users know them, published on change.

The topics (``edge.sinks.mqtt_topics``), under ``base = <topic_prefix>/<device_id>`` (``keycam/<host name>``)::

    base/availability                          online / offline (retained; offline is also the last will)
    base/events                                one message per event (tracking): {"type", "before", "after"}
    base/<label>, base/<label>/active          objects in view, and those moving (retained, on change)
    base/zones/<zone>/<label>[/active]         the same in each zone (retained, on change)
    base/detect/set, base/recordings/set       commands ON / OFF (edge.switches)
    base/detect/state, base/recordings/state   the switches (retained, on change)
    base/answer                                every frame's answer, only with answers = true

**On change, never per frame.** A frame publishes its events (each is a change) and the state topics whose value
changed (``mqtt_topics.States``); a frame where nothing happened publishes nothing. At every (re)connect the sink
says ``online``, publishes its discovery configs, the switches and every state topic (retained: a broker that
restarted without persistence has them again), and clears stale discovery (``edge.sinks.mqtt_discovery``). At the
end of the run it publishes the last ``end`` events (``Tracking.finish``), the occupancy after them, and
``offline``.

**Labels.** Entities, state topics and events exist only for the labels the configuration names: ``labels``, else
``[events] labels``, else ``person`` if the model has it, else its first (or only) label; each zone adds its own
``labels`` (else those). ``labels = [...]`` widens it.

The sink never blocks capture: publishing only queues (paho-mqtt's own network thread sends, reconnecting with
backoff from ``reconnect_min_s`` to ``reconnect_max_s``); at most ``queue`` messages wait, and what does not fit, or
cannot be queued while the broker is away (QoS 0), is dropped and counted (a state that could not be queued is
tried again with the next frame). Credentials come from a file of mode 0600; TLS is optional. Only answers leave:
no frame, no measurement, no picture.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, PrivateAttr, model_validator

from edge.credentials import read_token
from edge.errors import ConfigError
from edge.frame import Result
from edge.sinks.base import Sink, SinkConfig, SinkContext
from edge.sinks.mqtt_discovery import Discovery, default_labels, page_url
from edge.sinks.mqtt_topics import RESERVED, States, Topics, slug

if TYPE_CHECKING:
    from edge.events import Tracking
    from edge.switches import Switches

log = logging.getLogger(__name__)


@dataclass
class MqttStats:
    frames: int = 0  # results received
    published: int = 0  # messages queued for the broker (all kinds)
    dropped: int = 0  # messages that could not be queued (queue full, broker away at QoS 0)
    delivered: int = 0  # messages the broker acknowledged (QoS 1) or that were sent (QoS 0)
    connects: int = 0
    events: int = 0  # event messages queued
    states: int = 0  # state changes queued (counts, active counts, switches)
    answers: int = 0  # per-frame answers queued (answers = true)
    commands: int = 0  # switch commands received
    cleared: int = 0  # stale discovery configs removed


class MqttSink(Sink):
    """``labels``: the labels with state topics and entities (their events too); ``zones``: each zone's labels."""

    def __init__(self, settings: MqttConfig, labels: list[str], zones: dict[str, list[str]], device_id: str,
                 tracking: Tracking | None = None, switches: Switches | None = None, url: str = "") -> None:
        import paho.mqtt.client as mqtt  # the `mqtt` extra; only this sink needs it

        self.settings, self.device_id, self.tracking, self.switches = settings, device_id, tracking, switches
        self.topics = Topics(f"{settings.topic_prefix.rstrip('/')}/{device_id}")
        self.states = States(self.topics, labels, zones, tracked=tracking is not None)
        self.labels = frozenset(labels).union(*zones.values())  # whose events are published
        self.discovery = Discovery(settings.discovery_prefix, device_id, self.topics, self.states, switches, url,
                                   settings.qos)
        self._configs: tuple[tuple, dict[str, str]] | None = None
        self.stats = MqttStats()
        self._lock = threading.Lock()  # the counters only: never held while calling paho (its thread calls back
        # holding its own lock, which publish() takes too)
        self._mqtt = mqtt
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=settings.client_id or f"keycam-{device_id}")
        client.max_queued_messages_set(settings.queue)
        client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)
        client.will_set(self.topics.availability, "offline", qos=1, retain=True)
        if settings.username:
            password = read_token(settings.password_file) if settings.password_file else None
            client.username_pw_set(settings.username, password)
        if settings.tls:
            _tls(client, settings.ca_file)
        client.on_connect, client.on_publish, client.on_message = self._connected, self._acknowledged, self._message
        self.client = client
        self._started = False
        if switches is not None:
            switches.watch(self._switched)

    @property
    def configs(self) -> dict[str, str]:
        """The discovery configs, topic -> payload (none with ``discovery = false``: then every config here is stale)."""
        offered = self.discovery.switches
        if self._configs is None or self._configs[0] != offered:
            self._configs = (offered, self.discovery.configs() if self.settings.discovery else {})
        return self._configs[1]

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

    def _publish(self, topic: str, payload: str, retain: bool = False, qos: int | None = None,
                 wait_s: float = 0.0) -> bool:
        """Queue one message (counted); ``wait_s``: then wait that long, at most, for the broker's acknowledgement."""
        qos = self.settings.qos if qos is None else qos
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        # at QoS 1 "no connection" means queued for the next one (paho's queue); at QoS 0 it means lost
        queued = info.rc == self._mqtt.MQTT_ERR_SUCCESS or (qos > 0 and info.rc == self._mqtt.MQTT_ERR_NO_CONN)
        with self._lock:
            if queued:
                self.stats.published += 1
            else:
                self.stats.dropped += 1
        if queued and wait_s:
            info.wait_for_publish(wait_s)
        return queued

    # -- paho's network thread ----------------------------------------------------------------------------------

    def _connected(self, client, userdata, flags, reason, properties=None) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s:%d refused the connection: %s", self.settings.host, self.settings.port,
                        reason)
            return
        self.stats.connects += 1
        discovery = self.discovery
        topics = [(discovery.subscription, 1), (f"{discovery.prefix}/status", 1)]
        topics += [(self.topics.command(name), 1) for name in discovery.switches]
        client.subscribe(topics)  # the broker's retained configs under this node id come back: _message clears
        self._announce()

    def _announce(self) -> None:
        """What a (re)connect publishes, retained: online, the discovery configs, the switches, every state topic."""
        self._publish(self.topics.availability, "online", retain=True, qos=1)
        for topic, payload in self.configs.items():
            self._publish(topic, payload, retain=True, qos=1)
        for name in self.discovery.switches:
            self._switched(name, getattr(self.switches, name), counted=False)
        for _ in range(3):  # the loop's thread may change a state meanwhile: then its newer value goes out again
            version, values = self.states.snapshot()
            for topic, value in values.items():
                if self._publish(topic, value, retain=True):
                    self.states.sent(topic, value)
            if self.states.version == version:
                break

    def _message(self, client, userdata, message) -> None:
        topic, payload = message.topic, message.payload
        for name in self.discovery.switches:
            if topic == self.topics.command(name):
                with self._lock:
                    self.stats.commands += 1
                self.switches.command(name, payload.decode("utf-8", "replace"))
                return
        if topic == f"{self.discovery.prefix}/status":  # Home Assistant's birth message: it (re)started
            if payload == b"online" and not message.retain and self.configs:
                for config_topic, config in self.configs.items():
                    self._publish(config_topic, config, retain=True, qos=1)
            return
        if self.discovery.stale(topic, payload, bool(message.retain), self.configs):
            log.info("keycam: removing Home Assistant's retained config %s (no such entity in this run)", topic)
            if self._publish(topic, "", retain=True, qos=1):
                with self._lock:
                    self.stats.cleared += 1

    def _acknowledged(self, client, userdata, mid, reason=None, properties=None) -> None:
        with self._lock:
            self.stats.delivered += 1

    def _switched(self, name: str, on: bool, counted: bool = True) -> None:
        """A switch changed (a command, or anyone else): its state topic, retained."""
        if name in self.discovery.switches and self._publish(self.topics.switch_state(name), "ON" if on else "OFF",
                                                              retain=True, qos=1) and counted:
            with self._lock:
                self.stats.states += 1

    # -- the loop's thread --------------------------------------------------------------------------------------

    def write(self, result: Result) -> None:
        self.start()
        with self._lock:
            self.stats.frames += 1
        for event in getattr(result, "events", None) or ():
            self._event(event)
        outputs = result.outputs if isinstance(result.outputs, dict) else {}
        self._states(self.states.values(getattr(result, "zones", None), outputs.get("counts")))
        if self.settings.answers:
            frame = result.frame
            answer = {"sequence": frame.sequence, "timestamp_ns": frame.timestamp_ns, "origin": frame.origin,
                      "outputs": result.outputs}
            if self._publish(self.topics.answer, json.dumps(answer, sort_keys=True)):
                with self._lock:
                    self.stats.answers += 1

    def _event(self, event: dict) -> None:
        """One event, one message: Frigate's payload, the camera named in ``before`` and ``after`` as Frigate does."""
        after = event.get("after") or {}
        if after.get("label") not in self.labels:
            return
        payload = {"type": event.get("type"), "before": {**(event.get("before") or {}), "camera": self.device_id},
                   "after": {**after, "camera": self.device_id}}
        if self._publish(self.topics.events, json.dumps(payload, sort_keys=True)):
            with self._lock:
                self.stats.events += 1

    def _states(self, values: dict[str, str]) -> None:
        for topic, value in self.states.changed(values):
            if self._publish(topic, value, retain=True):
                self.states.sent(topic, value)
                with self._lock:
                    self.stats.states += 1

    # -- the run's end ------------------------------------------------------------------------------------------

    def close(self) -> None:
        if not self._started:
            return
        try:
            if self.tracking is not None:  # the objects still in view end; the occupancy after them (all 0)
                for event in self.tracking.finish():
                    self._event(event)
                self._states(self.states.values(self.tracking.occupancy()))
            if self.client.is_connected():
                self._publish(self.topics.availability, "offline", retain=True, qos=1, wait_s=5.0)  # all before it too
        finally:
            self.client.disconnect()
            self.client.loop_stop()

    def summary(self) -> str:
        """What the run published: ``queued`` messages each reached the broker (``delivered``: acknowledged at QoS 1,
        written at QoS 0) or were still waiting at the end; ``dropped`` ones never left (queue full, broker away at
        QoS 0). A message queued while the broker was away and sent at the reconnect is queued and delivered."""
        stats = self.stats
        reached = "acknowledged by the broker" if self.settings.qos else "sent to the broker"
        waiting = max(0, stats.published - stats.delivered)
        left = f", {waiting} still unacknowledged when the run ended (the broker away)" if waiting else ""
        cleared = f"; {stats.cleared} stale entities removed" if stats.cleared else ""
        answers = f", {stats.answers} answers" if self.settings.answers else ""
        return (f"mqtt {self.settings.host}:{self.settings.port} ({self.topics.base}): {stats.frames} frames; "
                f"published {stats.events} events, {stats.states} state changes{answers}; {stats.published} "
                f"messages queued, {stats.delivered} {reached}{left}; {stats.dropped} dropped (never queued: "
                f"the queue full or the broker away){cleared}")

    def watch(self, metrics) -> None:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        sink = self

        class _Collector:
            def collect(self):
                for name in ("published", "dropped", "delivered", "events", "states"):
                    yield CounterMetricFamily(f"keycam_mqtt_{name}", f"MQTT messages: {name}",
                                              value=getattr(sink.stats, name))
                yield GaugeMetricFamily("keycam_mqtt_connected", "1 while the broker is connected",
                                        value=1.0 if sink.client.is_connected() else 0.0)

        metrics.registry.register(_Collector())


def _tls(client, ca_file: str) -> None:
    """TLS on ``client``, trusting ``ca_file`` (PEM) or the system's CAs; a file that is missing or no CA
    certificates is named in one line."""
    fix = "name the broker's CA certificates (PEM), or leave ca_file empty to trust the system's"
    if ca_file and not Path(ca_file).is_file():
        raise ConfigError(f"mqtt.ca_file {ca_file!r} does not exist or is not a file; {fix}")
    try:
        client.tls_set(ca_certs=ca_file or None)
    except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
        raise ConfigError(f"mqtt.ca_file {ca_file or '(the system CAs)'!r} cannot be loaded "
                          f"({getattr(error, 'strerror', None) or error}); {fix}") from None


class MqttConfig(SinkConfig):
    """``[mqtt]``: events, occupancy and switches on an MQTT broker, with Home Assistant discovery (docs/events.md)."""

    host: str = Field(default="", description="the broker's host name or address (empty: no MQTT)")
    port: int = Field(default=1883, ge=1, le=65535, description="the broker's TCP port (8883 for TLS, usually)")
    topic_prefix: str = Field(default="keycam", min_length=1, pattern=r"^[^#+\x00]+$",
                              description="topics are <prefix>/<device_id>/... (no MQTT wildcard '#' or '+')")
    device_id: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]*$", description="this camera's name in topics "
                                                                                   "(empty: the host name)")
    client_id: str = Field(default="", description="the MQTT client id (empty: keycam-<device_id>)")
    username: str = Field(default="", description="user name at the broker (empty: anonymous)")
    password_file: str = Field(default="", description="the password, in a file of mode 0600 (unit: path)")
    tls: bool = Field(default=False, description="connect over TLS")
    ca_file: str = Field(default="", description="TLS: the CA certificates to trust (empty: the system's)")
    qos: Literal[0, 1] = Field(default=1, description="QoS of events, states and answers (1: acknowledged by the "
                                                      "broker)")
    labels: list[str] = Field(default_factory=list, description="the labels (class names) with state topics, "
                                                                "events and Home Assistant entities (empty: [events] "
                                                                "labels, else person if the model has it, else its "
                                                                "first label)")
    answers: bool = Field(default=False, description="also publish every frame's answer on <prefix>/<device_id>/"
                                                     "answer (a message per frame)")
    discovery: bool = Field(default=True, description="Home Assistant MQTT discovery: entities for the labels, zones "
                                                      "and switches (false: none, and the retained ones removed)")
    discovery_prefix: str = Field(default="homeassistant", min_length=1, description="Home Assistant's prefix")
    configuration_url: str = Field(default="", pattern=r"^((https?|homeassistant)://\S+)?$",
                                   description="the device's link in Home Assistant (empty: the [web] page when it "
                                               "listens beyond this machine on a fixed port)")
    queue: int = Field(default=1000, ge=1, le=1_000_000, description="messages waiting for the broker, at most "
                                                                     "(the rest are dropped and counted)")
    keepalive: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive, seconds")
    reconnect_min_s: int = Field(default=1, ge=1, le=3600, description="first reconnect delay, seconds (doubles)")
    reconnect_max_s: int = Field(default=60, ge=1, le=3600, description="longest reconnect delay, seconds")
    _web: object = PrivateAttr(default=None)  # the run's [web] section (link_page)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data):
        if isinstance(data, dict) and "classes" in data:
            raise ValueError("mqtt.classes is now mqtt.labels (the labels with topics, events and entities)")
        return data

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

    def link_page(self, web) -> None:
        """The run's ``[web]`` section (``edge.sinks.web.WebConfig``): its page is the device's configuration URL."""
        self._web = web

    def build(self, context: SinkContext) -> Sink | None:
        if not self.host:
            return None
        try:
            import paho.mqtt  # noqa: F401
        except ImportError:
            raise ConfigError("[mqtt] needs paho-mqtt: pip install 'keycam[mqtt]'") from None
        tracking = context.tracking
        labels = self._labels(list(context.labels), tracking)
        zones = {zone.name: sorted(zone.labels) or labels for zone in tracking.zones} if tracking is not None else {}
        url = self.configuration_url or (page_url(self._web) if self.discovery else "")
        return MqttSink(self, labels, zones, self.device_id or socket.gethostname(), tracking, context.switches, url)

    def _labels(self, names: list[str], tracking: Tracking | None) -> list[str]:
        """The labels with topics and entities (see the module's docstring), checked against the model's."""
        tracked = sorted(tracking.labels) if tracking is not None else []
        labels = list(dict.fromkeys(self.labels)) or tracked or default_labels(names)
        shown = f"{names[:10]}{' ...' if len(names) > 10 else ''}"
        unknown = [name for name in labels if names and name not in names]
        if unknown:
            raise ConfigError(f"mqtt.labels names {unknown}, which the model does not detect (it names {shown})")
        if tracked and self.labels and set(self.labels) - set(tracked):
            raise ConfigError(f"mqtt.labels names {sorted(set(self.labels) - set(tracked))}, which [events] labels "
                              f"does not track ({tracked}); add them there or leave them out here")
        slugs: dict[str, str] = {}
        for name in labels:
            if slug(name) in RESERVED or slug(name) in slugs:
                clash = f"the sink's own topic {slug(name)!r}" if slug(name) in RESERVED else repr(slugs[slug(name)])
                raise ConfigError(f"label {name!r} would publish where {clash} does; leave it out of mqtt.labels")
            slugs[slug(name)] = name
        return labels
