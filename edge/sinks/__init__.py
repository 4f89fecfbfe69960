"""Sinks: a small base (``base``), one file per kind, and the registry of their configuration sections.

Each kind has a section in the configuration file, named below; the configuration schema is made
from this registry. A run builds its sinks in two phases (``base.build_sinks``), so the order here
decides nothing. Adding a kind is one file and one line here.
"""

from __future__ import annotations

from edge.sinks.base import Sink, SinkConfig, SinkContext, build_sinks
from edge.sinks.events import EventsConfig
from edge.sinks.forwarding import ForwardConfig
from edge.sinks.metrics import MetricsConfig
from edge.sinks.mqtt import MqttConfig
from edge.sinks.recorder import RecordConfig
from edge.sinks.results import ResultsConfig
from edge.sinks.web import WebConfig
from firmware_sim.registry import Registry

SECTIONS: Registry[type[SinkConfig]] = Registry("sink")
SECTIONS.add("results", ResultsConfig)
SECTIONS.add("mqtt", MqttConfig)
SECTIONS.add("record", RecordConfig)
SECTIONS.add("forward", ForwardConfig)
SECTIONS.add("web", WebConfig)
SECTIONS.add("events", EventsConfig)
SECTIONS.add("metrics", MetricsConfig)

__all__ = ["SECTIONS", "Sink", "SinkConfig", "SinkContext", "build_sinks"]
