"""Synthetic tracks for the events tests: results with detections, and a scripted tracker that gives the ids a
test says (so a lifecycle test depends on the lifecycle alone, not on a tracker's matching)."""

from __future__ import annotations

import numpy as np

from edge.events import Tracking
from edge.events.zones import ZoneConfig
from edge.frame import Frame, Result
from edge.sinks.events import EventsConfig


def detection(box, score: float = 0.9, name: str = "person", **extra) -> dict:
    return {"box": [float(v) for v in box], "score": score, "label": 0, "class": name, **extra}


def result(sequence: int, detections: list[dict], seconds: float | None = None, error: str | None = None) -> Result:
    """Frame ``sequence`` at ``seconds`` (default: 10 frames a second) with these detections."""
    when = sequence / 10 if seconds is None else seconds
    frame = Frame(None, sequence, int(round(when * 1e9)), "synthetic", measured=True)
    return Result(frame, {"detections": detections}, error=error)


class ScriptedTracker:
    """Gives the ids in ``ids``, in order, one per detection it is handed (-1: none), as a tracker would."""

    by_time = False

    def __init__(self) -> None:
        self.calls = []

    def update(self, boxes: np.ndarray, scores: np.ndarray, labels: list[str], seconds: float) -> np.ndarray:
        self.calls.append((boxes.copy(), list(labels), seconds))
        return np.asarray([self.ids.pop(0) for _ in labels], np.int64) if labels else np.zeros(0, np.int64)


def scripted(frames: list[list[dict]], zones: dict | None = None, **settings) -> tuple[Tracking, list[Result]]:
    """Track ``frames`` (each a list of detections; the tracked ones carry the "id" the scripted tracker gives back)
    and return the stage and the results."""
    tracker = ScriptedTracker()
    tracker.ids = [d.pop("id") for frame in frames for d in frame if "id" in d]
    zones = {name: ZoneConfig(**zone) for name, zone in (zones or {}).items()}
    tracking = Tracking(EventsConfig(enabled=True, **settings), zones, tracker=tracker)
    results = [tracking(result(i, frame)) for i, frame in enumerate(frames)]
    return tracking, results


def events(results: list[Result], finished: list[dict] = ()) -> list[tuple[str, str, int]]:
    """(type, object id, sequence) of every event, in order."""
    found = [e for r in results for e in r.events] + list(finished)
    return [(e["type"], e["after"]["id"], e["sequence"]) for e in found]
