"""The tracking stage: a frame's answer becomes tracked objects, their events and the zones' occupancy.

::

    answer (detections in camera pixels) ──► tracker (edge.events.tracker): an id per detection
        ──► objects (edge.events.objects): new, seen, updated, ended; zones (edge.events.zones)
        ──► the Result: each detection's "track", result.events, result.zones

One :class:`Tracking` is built per run (``edge.job``), when ``[events] enabled``, and is called by whoever
produces the frame's answer, right after the answer stage: the local task stage (``Pipeline.back``, the loop's
calling thread) or, when the run forwards, the forwarding sink's sender thread (``edge.sinks.forward``), which
answers frames in their order, exactly once. Only one of the two answers frames in a run, and the stage holds
its own lock, so frames are tracked one at a time, in order, whichever thread calls. The sinks see its work on
the Result (``edge.frame.Result``: ``events`` and ``zones``) and, at the end of the run, the ``end`` events of
the objects still in view, from :meth:`Tracking.finish` (the same list to every sink that asks).

A frame whose answer failed (a server's refusal: ``result.error``) tells nothing about the scene: no event, and
the occupancy as it was.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from edge.events.objects import TrackedObject, seconds
from edge.events.tracker import Tracker
from edge.events.zones import ZoneConfig, zones_of
from edge.frame import Frame, Result

if TYPE_CHECKING:
    from edge.sinks.events import EventsConfig


class Tracking:
    """The run's tracking stage (see the module's docstring); ``tracker``: made from ``settings`` by default."""

    def __init__(self, settings: EventsConfig, zones: dict[str, ZoneConfig] | None = None,
                 tracker: Tracker | None = None) -> None:
        self.settings = settings
        self.zones = zones_of(zones or {})
        self.labels = frozenset(settings.labels)
        self.tracker = tracker or Tracker(settings.tracker, min_score=settings.min_score,
                                          min_frames=settings.min_frames, match_iou=settings.match_iou,
                                          end_after_frames=settings.end_after_frames,
                                          end_after_s=settings.end_after_s)
        self.counts: Counter = Counter()  # events made, by type
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, int], TrackedObject] = {}  # live objects by (label, the tracker's id)
        self._born = 0
        self._clock: float | None = None
        self._last = (0, -math.inf)  # (sequence, seconds) of the last frame tracked
        self._finished: list[dict] | None = None

    def unknown_labels(self, names) -> list[str]:
        """The labels ``[events]`` and the zones name that the model does not (``names``: its class names)."""
        wanted = set(self.labels).union(*(zone.labels for zone in self.zones))
        return sorted(wanted - set(names)) if names else []

    def __call__(self, result: Result) -> Result:
        """Track the frame's detections: each gets its ``track`` (an object's id, or None), and the result its
        ``events`` and ``zones``; the time it took is ``latency_ms["track"]``."""
        start = time.perf_counter()
        with self._lock:
            outputs = result.outputs if isinstance(result.outputs, dict) else {}
            found = outputs.get("detections")
            if result.error is None:
                result.events = self._step(found if isinstance(found, list) else [], result.frame)
            result.zones = self._occupancy()
        result.latency_ms["track"] = (time.perf_counter() - start) * 1e3
        return result

    def finish(self) -> list[dict]:
        """The run is over: an ``end`` event for every object still tracked, at the last frame's time. The first call
        ends them; every later call returns the same events (each sink that publishes events asks once)."""
        with self._lock:
            if self._finished is None:
                sequence, when = self._last  # no object without a frame tracked: when is a time here
                self._finished = [self._end(obj, when, sequence) for obj in self._objects.values()]
                self._objects.clear()
            return list(self._finished)

    def occupancy(self) -> dict:
        """The zones' occupancy now (as ``result.zones``)."""
        with self._lock:
            return self._occupancy()

    # -- one frame, under the lock ---------------------------------------------------------------------------------

    def _tick(self, frame: Frame) -> float:
        """The tracking clock: the frame's monotonic time (live sources), else its timestamp, in seconds, made
        strictly increasing."""
        raw = (frame.monotonic_ns or frame.timestamp_ns) / 1e9
        self._clock = raw if self._clock is None or raw > self._clock else self._clock + 1e-6
        return self._clock

    def _step(self, detections: list, frame: Frame) -> list[dict]:
        when, clock, sequence = max(seconds(frame.timestamp_ns), self._last[1]), self._tick(frame), frame.sequence
        self._last = (sequence, when)  # event times never go back, whatever a source's clock does
        chosen = [d for d in detections if isinstance(d, dict) and len(d.get("box") or ()) == 4]
        for detection in chosen:
            detection["track"] = None
        tracked = [d for d in chosen if not self.labels or _label(d) in self.labels]
        boxes = np.asarray([d["box"] for d in tracked], np.float64).reshape(-1, 4)
        scores = np.asarray([d.get("score", 1.0) for d in tracked], np.float64)
        ids = self.tracker.update(boxes, scores, [_label(d) for d in tracked], clock)
        events, seen = [], set()
        for detection, number in zip(tracked, ids.tolist()):
            if number < 0:
                continue
            key = (_label(detection), number)
            obj = self._objects.get(key)
            fresh = obj is None
            if fresh:
                obj = self._objects[key] = self._new(key[0], when)
            obj.see(detection["box"], detection.get("score", 1.0), when, clock, self.settings.stationary_frames)
            obj.presence.update(self.zones, obj.label, obj.box)
            detection["track"] = obj.id
            seen.add(key)
            if fresh or obj.changed(self.settings.score_step):
                events.append(self._event(obj, "new" if fresh else "update", sequence))
        return events + self._expire(seen, when, clock, sequence)

    def _new(self, label: str, when: float) -> TrackedObject:
        self._born += 1
        return TrackedObject(f"{when:.6f}-{self._born:06d}", label, when)

    def _event(self, obj: TrackedObject, kind: str, sequence: int) -> dict:
        self.counts[kind] += 1
        return obj.event(kind, sequence)

    def _end(self, obj: TrackedObject, when: float, sequence: int) -> dict:
        obj.end_time = when
        return self._event(obj, "end", sequence)

    def _expire(self, seen: set, when: float, clock: float, sequence: int) -> list[dict]:
        """End the objects not seen for ``end_after_frames`` frames (when set) or ``end_after_s`` seconds."""
        settings, ended = self.settings, []
        for key, obj in list(self._objects.items()):
            if key in seen:
                continue
            obj.missed += 1
            if settings.end_after_frames > 0:
                gone = obj.missed >= settings.end_after_frames
            else:
                gone = clock - obj.clock >= settings.end_after_s - 1e-9
            if gone:
                ended.append(self._end(obj, when, sequence))
                del self._objects[key]
        return ended

    def _occupancy(self) -> dict:
        """Objects in view (from ``new`` to ``end``) by label, and how many of them move (``active``): in the whole
        frame and in each zone (every configured zone, empty when nobody is in it)."""
        frame, zones = _Tally(), {zone.name: _Tally() for zone in self.zones}
        for obj in self._objects.values():
            frame.add(obj)
            for name in obj.presence.current:
                zones[name].add(obj)
        return {"frame": frame.counts(), "zones": {name: tally.counts() for name, tally in zones.items()}}


class _Tally:
    def __init__(self) -> None:
        self.all, self.active = Counter(), Counter()

    def add(self, obj: TrackedObject) -> None:
        self.all[obj.label] += 1
        if not obj.stationary:
            self.active[obj.label] += 1

    def counts(self) -> dict:
        return {"counts": dict(sorted(self.all.items())), "active": dict(sorted(self.active.items()))}


def _label(detection: dict) -> str:
    """A detection's class name (the results file's ``class``), or its label number as text."""
    name = detection.get("class")
    return str(name) if name is not None else str(detection.get("label", ""))
