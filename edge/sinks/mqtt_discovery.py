"""Home Assistant's MQTT discovery for the MQTT sink (``edge.sinks.mqtt``): which entities, their retained configs,
and the configs of entities that no longer exist, removed.

Single-component discovery (one retained config per entity), under this device's node id::

    <discovery_prefix>/<component>/<node>/<object_id>/config      node = the device id as [a-z0-9_]

Entities exist only for the labels and zones the configuration names: per label a count sensor, an occupancy
binary sensor (count above 0) and, with tracking, an active-count sensor; the same per zone and zone label; a
switch per offered switch (detection; recording when the run records). All share one device (with ``sw_version``,
``model``, ``configuration_url`` when the page is on) and the availability topic, and carry an ``origin``.

**Removing what no longer exists.** At every connect the sink subscribes to ``<discovery_prefix>/+/<node>/+/config``:
the broker answers with the retained configs it holds under this node id (flagged retained), and each one that is
not among the configs of this run is cleared with an empty retained payload, which is how Home Assistant deletes a
discovered entity. The broker is the record, so nothing is persisted on the device (a read-only root, a state
folder wiped, a second SD card all give the same answer) and what is removed is exactly what Home Assistant
would read at its next start. The one thing it cannot see is a change of ``device_id`` (another node id).
"""

from __future__ import annotations

import importlib.metadata
import json
import socket
from dataclasses import dataclass

from edge.sinks.mqtt_topics import States, Topics, slug
from edge.sinks.web import is_loopback

ORIGIN = "keycam"
MODEL = "privacy-preserving camera"
COMPONENTS = ("binary_sensor", "sensor", "switch")
OCCUPIED = "{{ 'ON' if (value | int(0)) > 0 else 'OFF' }}"  # the count topic read as occupancy
SWITCH_NAMES = {"detect": ("Detection", "mdi:motion-sensor"), "recordings": ("Recording", "mdi:record-rec")}


def version() -> str:
    """keycam's version (``sw_version``), from the installed package's metadata."""
    try:
        return importlib.metadata.version("keycam")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def default_labels(names: list[str]) -> list[str]:
    """The labels with entities when the configuration names none: ``person`` if the model has it (Frigate tracks
    person by default), else its only label, else its first."""
    if "person" in names:
        return ["person"]
    return list(names[:1])


def page_url(web) -> str:
    """The ``[web]`` page's address for Home Assistant's device link (``configuration_url``), or "" when there is
    none a browser elsewhere could open: the page off, on a port chosen at start (0), or on a loopback address."""
    if web is None or not web.enabled or not web.port or is_loopback(web.host):
        return ""
    host = socket.getfqdn() if web.host in ("0.0.0.0", "::", "") else web.host  # every address: this machine's name
    return f"http://{f'[{host}]' if ':' in host else host}:{web.port}/"


@dataclass(frozen=True)
class Entity:
    component: str  # one of COMPONENTS
    object_id: str  # [a-z0-9_]: the config topic's last level and the unique id's end
    config: dict  # the component's own options (no device, origin or availability)


class Discovery:
    """The discovery configs of one run. ``states``: the state topics (labels, zones, tracked or not); ``switches``:
    the run's ``edge.switches.Switches`` (None: no switch entities); ``url``: the device's configuration URL ("" for
    none)."""

    def __init__(self, prefix: str, device_id: str, topics: Topics, states: States, switches=None, url: str = "",
                 qos: int = 1) -> None:
        self.prefix, self.device_id, self.topics = prefix.rstrip("/"), device_id, topics
        self.node = slug(device_id)
        self.states, self._switches, self.url, self.qos = states, switches, url, qos

    @property
    def switches(self) -> tuple[str, ...]:
        """The switches offered: read when asked, since the job offers recording once it has built its sinks."""
        return self._switches.offered if self._switches is not None else ()

    @property
    def subscription(self) -> str:
        """Every retained config under this node id, whatever its component and object."""
        return f"{self.prefix}/+/{self.node}/+/config"

    def device(self) -> dict:
        device = {"identifiers": [f"keycam_{self.node}"], "name": f"keycam {self.device_id}",
                  "manufacturer": "keycam", "model": MODEL, "sw_version": version()}
        if self.url:
            device["configuration_url"] = self.url
        return device

    @staticmethod
    def origin() -> dict:
        return {"name": ORIGIN, "sw_version": version()}

    def entities(self) -> list[Entity]:
        found = []
        states = self.states
        for label in states.labels:
            found += self._counting(label, None)
        for zone, labels in states.zones.items():
            for label in labels:
                found += self._counting(label, zone)
        for name in self.switches:
            title, icon = SWITCH_NAMES[name]
            found.append(Entity("switch", name, {
                "name": title, "icon": icon, "entity_category": "config", "command_topic": self.topics.command(name),
                "state_topic": self.topics.switch_state(name), "payload_on": "ON", "payload_off": "OFF",
                "qos": self.qos}))
        return found

    def _counting(self, label: str, zone: str | None) -> list[Entity]:
        where, stem = (f"{zone} ", f"zone_{zone}_") if zone else ("", "")
        stem += slug(label)
        count = self.topics.count(label, zone)
        found = [Entity("sensor", f"{stem}_count", {"name": f"{where}{label} count", "state_topic": count,
                                                     "state_class": "measurement", "icon": "mdi:counter"}),
                 Entity("binary_sensor", f"{stem}_occupancy", {
                     "name": f"{where}{label} occupancy", "state_topic": count, "value_template": OCCUPIED,
                     "device_class": "occupancy", "payload_on": "ON", "payload_off": "OFF"})]
        if self.states.tracked:
            found.append(Entity("sensor", f"{stem}_active", {
                "name": f"{where}{label} active count", "state_topic": self.topics.active(label, zone),
                "state_class": "measurement", "icon": "mdi:run"}))
        return found

    def configs(self) -> dict[str, str]:
        """Each entity's config topic and its payload (JSON, keys sorted)."""
        device, origin, found = self.device(), self.origin(), {}
        for entity in self.entities():
            payload = {**entity.config, "unique_id": f"keycam_{self.node}_{entity.object_id}", "device": device,
                       "origin": origin, "availability_topic": self.topics.availability}
            topic = f"{self.prefix}/{entity.component}/{self.node}/{entity.object_id}/config"
            found[topic] = json.dumps(payload, sort_keys=True)
        return found

    def stale(self, topic: str, payload: bytes, retained: bool, current: dict[str, str]) -> bool:
        """A retained config the broker holds under this node id that no entity of this run has: to be cleared."""
        return retained and bool(payload) and topic not in current and topic.endswith("/config")
