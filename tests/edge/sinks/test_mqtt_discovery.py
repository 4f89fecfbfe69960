"""Home Assistant discovery of the MQTT sink: its configs checked against Home Assistant's documented schema (encoded
below as data), entities only for the labels and zones the configuration names, the device and origin blocks, and,
against a real mosquitto, the retained configs of entities that no longer exist removed at connect."""

from __future__ import annotations

import importlib.metadata
import json
import re
import socket
import time
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from edge.errors import ConfigError
from edge.sinks import SinkContext
from edge.sinks.mqtt import MqttConfig
from edge.sinks.mqtt_discovery import OCCUPIED, default_labels
from edge.switches import Switches
from tests.edge.sinks.test_mqtt import Listener, broker, retained, wait  # noqa: F401 - the broker fixture

# -- Home Assistant's documented schema, as data ------------------------------------------------------------------
# https://www.home-assistant.io/integrations/mqtt/ : "Discovery topic" (<discovery_prefix>/<component>/[<node_id>/]
# <object_id>/config, ids of [a-zA-Z0-9_-]), "Discovery payload" (a JSON dictionary; every required option present),
# "Adding information about the origin of a discovery message" (origin: name required; sw_version, support_url).
# The components' pages (fetched 2026-06): https://www.home-assistant.io/integrations/binary_sensor.mqtt/ (state_topic
# Required), https://www.home-assistant.io/integrations/sensor.mqtt/ (state_topic Required),
# https://www.home-assistant.io/integrations/switch.mqtt/ (command_topic Required); on each, `device` "only works when
# unique_id is set" and needs "at least one of identifiers or connections".

TOPIC = re.compile(r"^(?P<prefix>[^/#+]+)/(?P<component>[a-z_]+)/(?:(?P<node>[a-zA-Z0-9_-]+)/)?"
                   r"(?P<object>[a-zA-Z0-9_-]+)/config$")
AVAILABILITY = {"availability", "availability_mode", "availability_template", "availability_topic",
                "payload_available", "payload_not_available"}
ENTITY = {"default_entity_id", "device", "enabled_by_default", "encoding", "entity_category", "entity_picture", "icon",
          "json_attributes_template", "json_attributes_topic", "name", "object_id", "origin", "platform", "qos",
          "unique_id", "value_template", "group"} | AVAILABILITY
SCHEMA = {
    "binary_sensor": {"required": {"state_topic"},
                      "options": ENTITY | {"device_class", "expire_after", "force_update", "off_delay", "payload_off",
                                           "payload_on", "state_topic"}},
    "sensor": {"required": {"state_topic"},
               "options": ENTITY | {"device_class", "expire_after", "force_update", "last_reset_value_template",
                                    "options", "state_class", "state_topic", "suggested_display_precision",
                                    "unit_of_measurement"}},
    "switch": {"required": {"command_topic"},
               "options": ENTITY | {"command_template", "command_topic", "device_class", "message_expiry_interval",
                                    "optimistic", "payload_off", "payload_on", "retain", "state_off", "state_on",
                                    "state_topic"}},
}
DEVICE = {"one_of": {"identifiers", "connections"},
          "options": {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
                      "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device"}}
ORIGIN = {"required": {"name"}, "options": {"name", "sw_version", "support_url"}}
ENTITY_CATEGORIES = {"config", "diagnostic"}
STATE_CLASSES = {"measurement", "total", "total_increasing"}  # https://developers.home-assistant.io/docs/core/entity/sensor
URL = re.compile(r"^(https?|homeassistant)://")  # configuration_url: "http://, https:// or an internal homeassistant://"


def schema_problems(topic: str, payload: str) -> list[str]:
    """What in one discovery message Home Assistant's documentation says it must not be."""
    found = []
    match = TOPIC.match(topic)
    if match is None or match["component"] not in SCHEMA:
        return [f"{topic}: not <prefix>/<component>/[<node_id>/]<object_id>/config of a known component"]
    config = json.loads(payload)
    rules = SCHEMA[match["component"]]
    if not isinstance(config, dict):
        return [f"{topic}: the payload is not a JSON dictionary"]
    found += [f"{topic}: {key} is required" for key in rules["required"] - set(config)]
    found += [f"{topic}: {key} is no documented option" for key in set(config) - rules["options"]]
    if "availability" in config and "availability_topic" in config:
        found.append(f"{topic}: availability and availability_topic must not be used together")
    device, origin = config.get("device", {}), config.get("origin", {})
    if device and "unique_id" not in config:
        found.append(f"{topic}: a device needs unique_id")
    if not set(device) & DEVICE["one_of"]:
        found.append(f"{topic}: the device needs identifiers or connections")
    found += [f"{topic}: device.{key} is no documented option" for key in set(device) - DEVICE["options"]]
    if "configuration_url" in device and not URL.match(device["configuration_url"]):
        found.append(f"{topic}: configuration_url {device['configuration_url']!r}")
    found += [f"{topic}: origin.{key} is required" for key in ORIGIN["required"] - set(origin)]
    found += [f"{topic}: origin.{key} is no documented option" for key in set(origin) - ORIGIN["options"]]
    if config.get("entity_category", "config") not in ENTITY_CATEGORIES:
        found.append(f"{topic}: entity_category {config['entity_category']!r}")
    if config.get("state_class", "measurement") not in STATE_CLASSES:
        found.append(f"{topic}: state_class {config['state_class']!r}")
    return found


# -- sinks built from settings, without a run -----------------------------------------------------------------------

COCO_LIKE = ("person", *(f"class{i}" for i in range(1, 80)))


def _tracking(labels=(), zones=None) -> SimpleNamespace:
    """What the sink reads of the run's edge.events.Tracking at build: its labels and zones."""
    zones = [SimpleNamespace(name=name, labels=frozenset(only)) for name, only in (zones or {}).items()]
    return SimpleNamespace(labels=frozenset(labels), zones=zones, finish=list, occupancy=lambda: None)


def _context(names=COCO_LIKE, tracking=None, switches=None) -> SinkContext:
    return SinkContext(None, None, labels=tuple(names), tracking=tracking, switches=switches)


def _sink(names=COCO_LIKE, tracking=None, switches=None, port: int = 1883, **settings):
    """The sink [mqtt] builds for a model whose labels are ``names``."""
    return MqttConfig(host="127.0.0.1", port=port, device_id="cam1", **settings).build(
        _context(names, tracking, switches))


def test_every_discovery_config_meets_home_assistants_documented_schema():
    import jinja2

    switches = Switches()
    switches.offer("recordings")
    sink = _sink(tracking=_tracking(zones={"driveway": ["car"], "porch": []}), switches=switches, names=COCO_LIKE[:3]
                 + ("car",))
    configs = sink.configs
    assert [problem for topic, payload in configs.items() for problem in schema_problems(topic, payload)] == []
    payloads = [json.loads(p) for p in configs.values()]
    assert len({p["unique_id"] for p in payloads}) == len(payloads) == len({p["name"] for p in payloads})
    template = jinja2.Environment().from_string(OCCUPIED)  # the occupancy read from the count topic, as HA renders
    assert [template.render(value=v) for v in ("0", "1", "3", "")] == ["OFF", "ON", "ON", "OFF"]
    assert schema_problems("homeassistant/sensor/cam 1/x/config", "{}") and schema_problems(  # the check bites
        "homeassistant/sensor/cam1/x/config", json.dumps({"name": "x", "device": {"name": "d"}, "origin": {}}))


def test_entities_only_for_the_labels_and_zones_the_configuration_names():
    objects = lambda sink: sorted(t.split("/")[-2] for t in sink.configs)  # noqa: E731
    assert objects(_sink()) == ["person_count", "person_occupancy"]  # 80 labels, none named: person only
    assert default_labels(["face"]) == ["face"] and default_labels(["cat", "dog"]) == ["cat"] and not default_labels([])
    tracked = _sink(tracking=_tracking(zones={"driveway": ["car"], "porch": []}), names=COCO_LIKE + ("car",))
    assert objects(tracked) == ["person_active", "person_count", "person_occupancy", "zone_driveway_car_active",
                                "zone_driveway_car_count", "zone_driveway_car_occupancy", "zone_porch_person_active",
                                "zone_porch_person_count", "zone_porch_person_occupancy"]
    assert tracked.labels == {"person", "car"}  # whose events are published
    assert objects(_sink(tracking=_tracking(labels=["class3"]))) == ["class3_active", "class3_count",
                                                                    "class3_occupancy"]  # [events] labels
    wide = _sink(labels=["person", "class7"])
    assert len(wide.configs) == 4 and wide.states.labels == ["person", "class7"]
    assert _sink(discovery=False).configs == {}
    with pytest.raises(ConfigError, match=r"mqtt.labels names \['dog'\], which the model does not detect"):
        _sink(names=["cat"], labels=["dog"])
    with pytest.raises(ConfigError, match=r"which \[events\] labels does not track"):
        _sink(tracking=_tracking(labels=["person"]), labels=["class1"])
    with pytest.raises(ConfigError, match="label 'events' would publish where the sink's own topic 'events' does"):
        _sink(names=["events", "cat"], labels=["events"])
    with pytest.raises(ValidationError, match="mqtt.classes is now mqtt.labels"):
        MqttConfig.model_validate({"host": "h", "classes": ["face"]})


def test_the_device_has_its_version_model_origin_and_the_page_as_its_configuration_url():
    from edge.sinks.web import WebConfig

    version = importlib.metadata.version("keycam")
    config = json.loads(next(iter(_sink().configs.values())))
    assert config["device"]["sw_version"] == version and config["device"]["model"] and config["device"]["name"]
    assert config["origin"] == {"name": "keycam", "sw_version": version}
    assert "configuration_url" not in config["device"]  # no page

    def url(web, **settings) -> str | None:
        section = MqttConfig(host="127.0.0.1", device_id="cam1", **settings)
        section.link_page(web)
        sink = section.build(_context())
        return json.loads(next(iter(sink.configs.values())))["device"].get("configuration_url")

    everywhere = WebConfig(enabled=True, host="0.0.0.0", port=8080, token_file="token")
    assert url(everywhere) == f"http://{socket.getfqdn()}:8080/"
    assert url(WebConfig(enabled=True, host="192.168.1.20", port=8081, token_file="t")) == "http://192.168.1.20:8081/"
    assert url(WebConfig(enabled=True, host="127.0.0.1", port=8080)) is None  # only this machine reaches it
    assert url(WebConfig(enabled=True, host="0.0.0.0", port=0, token_file="t")) is None  # a port chosen at start
    assert url(everywhere, configuration_url="https://cam.example/") == "https://cam.example/"  # said outright
    with pytest.raises(ValidationError):
        MqttConfig(configuration_url="ftp://cam")


def test_retained_configs_of_entities_that_no_longer_exist_are_removed_at_connect(broker):  # noqa: F811
    import paho.mqtt.client as mqtt

    old = {"homeassistant/sensor/cam1/face_count/config": {"name": "face count", "state_topic": "keycam/cam1/face"},
           "homeassistant/binary_sensor/cam1/face_occupancy/config": {"name": "face", "state_topic": "x"},
           "homeassistant/sensor/cam1/person_count/config": {"name": "stale payload, same entity"},
           "homeassistant/sensor/cam2/face_count/config": {"name": "another camera's"}}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    for topic, payload in old.items():
        client.publish(topic, json.dumps(payload), qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    sink = _sink(port=broker.port)
    sink.start()
    wait(lambda: sink.stats.cleared == 2)
    sink.close()
    held = retained(broker.port, ("homeassistant/#",))
    assert set(held) == set(sink.configs) | {"homeassistant/sensor/cam2/face_count/config"}
    assert held["homeassistant/sensor/cam1/person_count/config"] == sink.configs[
        "homeassistant/sensor/cam1/person_count/config"]  # the current entity's config replaced the old payload
    off = _sink(port=broker.port, discovery=False)  # discovery turned off: every config under this node goes
    off.start()
    wait(lambda: off.stats.cleared == 2)
    off.close()
    assert set(retained(broker.port, ("homeassistant/#",))) == {"homeassistant/sensor/cam2/face_count/config"}


def test_home_assistants_birth_message_brings_the_configs_again(broker):  # noqa: F811
    listener = Listener(broker.port, ("homeassistant/#",))
    sink = _sink(port=broker.port)
    try:
        sink.start()
        topic = "homeassistant/sensor/cam1/person_count/config"
        wait(lambda: len(listener.get(topic)) == 1)
        listener.client.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)  # HA (re)started
        wait(lambda: len(listener.get(topic)) == 2)
        time.sleep(0.3)
        assert len(listener.get(topic)) == 2 and listener.get(topic)[1] == sink.configs[topic]
    finally:
        sink.close()
        listener.close()
