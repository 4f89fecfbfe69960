"""``[metrics]``: the Prometheus endpoint's settings, and the sink that counts what the answers say for it.

With ``port`` set, the run (``edge.job.Job.run``) serves ``/metrics`` (``edge.metrics.MetricsServer``) and this
section builds :class:`AnswerCounts`, an answer sink like the results file: the loop hands it every answered frame,
and when the run forwards, the forwarding sink hands it the server's answers, so both count alike. It counts:

- ``keycam_detections_total{label}``: each answer's ``detections``, by class name;
- with ``[events]`` on: ``keycam_events_total{type}`` (new, update, end) and ``keycam_objects{label}``, the tracked
  objects in view after the last frame (``result.zones["frame"]``);
- with ``[zones.NAME]``: ``keycam_zone_entries_total{zone,label}`` (an object whose event puts it in a zone it was
  not in at its previous event: a ``new`` event's zones, or the zones an ``update`` adds, as ``edge.events.zones``
  decides entering) and ``keycam_zone_objects{zone,label}``, the objects in the zone now.

The counts are read at each scrape (``watch``). Labels are bounded: a class name the model does not have (or, for a
model without names, anything but a class number below ``LABELS_MAX``) is counted as ``other``; zones are the
configured ones. The ``end`` events of objects still in view when the run stops (``Tracking.finish``) come after
the endpoint's last scrape and are not counted.
"""

from __future__ import annotations

import threading
from collections import Counter

from pydantic import Field

from edge.frame import Result
from edge.sinks.base import Sink, SinkConfig, SinkContext

LABELS_MAX = 1000  # class numbers counted by themselves, for a model without class names
OTHER = "other"
EVENT_TYPES = ("new", "update", "end")


class AnswerCounts(Sink):
    """Detections by label; with tracking, events by type and objects in view; with zones, entries and objects per
    zone (see the module's docstring). Written by the loop (or the forwarding sink), read by the scrape's thread."""

    def __init__(self, labels=(), zones=(), tracking: bool = False) -> None:
        self.names, self.zones, self.tracking = frozenset(labels), tuple(zones), tracking
        self.frames = 0
        self.detections: Counter = Counter()
        self.events: Counter = Counter({kind: 0 for kind in EVENT_TYPES} if tracking else {})
        self.entries: Counter = Counter()  # (zone, label) -> objects that entered
        self.objects: dict[str, int] = {}  # label -> in view now (0 once seen and gone: a series stays)
        self.zone_objects: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def label(self, value) -> str:
        """``value`` as a bounded label: a class name the model has, a class number of a model without names, or
        ``other``."""
        text = "" if value is None else str(value)
        if self.names:
            return text if text in self.names else OTHER
        return text if text.isdigit() and int(text) < LABELS_MAX else OTHER

    def write(self, result: Result) -> None:
        outputs = result.outputs if isinstance(result.outputs, dict) else {}
        found = outputs.get("detections")
        with self._lock:
            self.frames += 1
            for detection in found if isinstance(found, list) else []:
                if isinstance(detection, dict):
                    self.detections[self.label(detection.get("class", detection.get("label")))] += 1
            for event in getattr(result, "events", None) or []:
                if isinstance(event, dict) and event.get("type") in EVENT_TYPES:
                    self._event(event)
            zones = getattr(result, "zones", None)
            if isinstance(zones, dict):
                self._occupancy(zones)

    def _event(self, event: dict) -> None:
        kind, after, before = event["type"], event.get("after") or {}, event.get("before") or {}
        self.events[kind] += 1
        label = self.label(after.get("label"))
        was = set() if kind == "new" else set(before.get("current_zones") or ())
        for zone in after.get("current_zones") or ():
            if zone in self.zones and zone not in was:
                self.entries[(zone, label)] += 1

    def _tally(self, counts) -> Counter:
        tally: Counter = Counter()
        for label, count in (counts or {}).items():
            tally[self.label(label)] += int(count)
        return tally

    def _occupancy(self, zones: dict) -> None:
        now = self._tally((zones.get("frame") or {}).get("counts"))
        self.objects = {label: now.get(label, 0) for label in set(self.objects) | set(now)}
        inside: Counter = Counter()
        for name, occupancy in (zones.get("zones") or {}).items():
            if name in self.zones:
                for label, count in self._tally((occupancy or {}).get("counts")).items():
                    inside[(name, label)] += count
        self.zone_objects = {key: inside.get(key, 0) for key in set(self.zone_objects) | set(inside)}

    def snapshot(self) -> dict:
        """A copy of the counts, for a scrape."""
        with self._lock:
            return {"frames": self.frames, "detections": dict(self.detections), "tracking": self.tracking,
                    "events": dict(self.events), "objects": dict(self.objects), "zones": self.zones,
                    "entries": dict(self.entries), "zone_objects": dict(self.zone_objects)}

    def watch(self, metrics) -> None:
        metrics.watch_answers(self)


class MetricsConfig(SinkConfig):
    """``[metrics]``: the Prometheus endpoint (docs/runtime.md lists its metrics)."""

    port: int = Field(default=0, ge=0, le=65535, description="serve Prometheus metrics on this TCP port "
                                                              "(0: no metrics endpoint)")
    host: str = Field(default="127.0.0.1", description="address to bind the metrics endpoint to")

    def build(self, context: SinkContext) -> Sink | None:
        if not self.port:
            return None
        tracking = context.tracking
        zones = [zone.name for zone in tracking.zones] if tracking is not None else []
        return AnswerCounts(context.labels, zones, tracking is not None)
