"""The MQTT sink's topics, and its state topics published on change (``edge.sinks.mqtt``).

Under ``base = <topic_prefix>/<device_id>`` (Frigate's ``frigate/<camera>``)::

    base/availability                 online / offline (retained; offline is also the last will)
    base/events                       one message per event: {"type", "before", "after"} (Frigate's frigate/events)
    base/<label>                      objects of the label in view (retained; tracked objects, else the frame's count)
    base/<label>/active               those of them that move (retained; with tracking)
    base/zones/<zone>/<label>         objects of the label in the zone (retained; zones need tracking)
    base/zones/<zone>/<label>/active  those of them that move (retained)
    base/detect/set, base/recordings/set      commands: ON / OFF (edge.switches)
    base/detect/state, base/recordings/state  the switches: ON / OFF (retained)
    base/answer                       every frame's answer, only with answers = true

A state topic is published when its value changes, never because a frame came: :class:`States` remembers what
was published last (what the broker holds, retained) and gives only the topics whose value differs.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

RESERVED = ("availability", "events", "answer", "zones", "detect", "recordings")  # base/<word>: not a label's topic


def slug(text: str) -> str:
    """A label as a topic level and an id: lower case letters, digits and ``_`` (Home Assistant's ids allow those)."""
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "label"


@dataclass(frozen=True)
class Topics:
    base: str

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def answer(self) -> str:
        return f"{self.base}/answer"

    def count(self, label: str, zone: str | None = None) -> str:
        return f"{self.base}/{slug(label)}" if zone is None else f"{self.base}/zones/{zone}/{slug(label)}"

    def active(self, label: str, zone: str | None = None) -> str:
        return self.count(label, zone) + "/active"

    def command(self, switch: str) -> str:
        return f"{self.base}/{switch}/set"

    def switch_state(self, switch: str) -> str:
        return f"{self.base}/{switch}/state"


class States:
    """The state topics' values for a frame, and which of them changed since they were last published.

    ``labels``: the labels with topics in the whole frame; ``zones``: each zone's labels (tracking only);
    ``tracked``: the counts come from the tracked objects (``result.zones``), with ``active`` counts, else from the
    frame's own ``outputs["counts"]`` (a detector's answer). ``current`` is what the broker should hold (every topic
    starts at 0: nothing in view), ``sent`` what was queued for it. Thread-safe: the loop's thread publishes the
    changes, the network thread republishes ``current`` at every connect (:meth:`snapshot`)."""

    def __init__(self, topics: Topics, labels: list[str], zones: dict[str, list[str]], tracked: bool) -> None:
        self.topics, self.labels, self.zones, self.tracked = topics, labels, zones, tracked
        self._lock = threading.Lock()
        self._current = self.values({"frame": {}, "zones": {}}, {})  # nothing in view: what a run starts from
        self._sent: dict[str, str] = {}
        self.version = 0  # bumped at every change of ``current``

    def values(self, occupancy: dict | None = None, counts: dict | None = None) -> dict[str, str]:
        """Every state topic's value: from the tracked occupancy (``result.zones``) when tracking, else from the
        frame's counts; nothing is known (an empty dict) from a frame without either."""
        found: dict[str, str] = {}
        if self.tracked:
            if occupancy is None:
                return found
            self._tally(found, occupancy.get("frame") or {}, self.labels, None)
            for zone, labels in self.zones.items():
                self._tally(found, (occupancy.get("zones") or {}).get(zone) or {}, labels, zone)
        elif isinstance(counts, dict):
            for label in self.labels:
                found[self.topics.count(label)] = str(int(counts.get(label, 0)))
        return found

    def _tally(self, found: dict, where: dict, labels: list[str], zone: str | None) -> None:
        counts, active = where.get("counts") or {}, where.get("active") or {}
        for label in labels:
            found[self.topics.count(label, zone)] = str(int(counts.get(label, 0)))
            found[self.topics.active(label, zone)] = str(int(active.get(label, 0)))

    def changed(self, values: dict[str, str]) -> list[tuple[str, str]]:
        """Take ``values`` as the current state; the (topic, value) pairs that differ from what was queued last."""
        with self._lock:
            for topic, value in values.items():
                if self._current.get(topic) != value:
                    self._current[topic] = value
                    self.version += 1
            return [(topic, value) for topic, value in values.items() if self._sent.get(topic) != value]

    def sent(self, topic: str, value: str) -> None:
        """``value`` is queued for the broker (a publish that failed is not: the next frame tries again)."""
        with self._lock:
            self._sent[topic] = value

    def snapshot(self) -> tuple[int, dict[str, str]]:
        """(version, every state topic's current value)."""
        with self._lock:
            return self.version, dict(self._current)
