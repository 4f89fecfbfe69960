"""``[events]``: tracking on or off, its settings, and the events log (JSON lines, one event a line).

With ``enabled = true`` the run tracks the objects its detector finds (``edge.events``: a tracker from the
events extra, the objects' lifecycle, ``[zones.NAME]``), each detection in the results file gets its ``track``
(the object's id, or null), and each Result carries ``events`` and ``zones``. With ``path`` set, the events go to
their own log as well, one per line, keys sorted::

    {"type": "new" | "update" | "end", "sequence": 12, "before": {...}, "after": {...}}

``before`` and ``after`` are the object's state at its previous event and now (``edge.events.objects``: id,
label, score, top_score, box, area, current_zones, entered_zones, first_seen, last_seen, end_time, frames,
stationary, motionless_count, position_changes), as Frigate publishes ``frigate/events``; never a picture.
At the end of the run the objects still in view end (``Tracking.finish``), so every object has one ``new`` and
one ``end``. The file follows ``existing`` as the results file does; a replay (``keycam replay``) starts it over.
"""

from __future__ import annotations

import importlib.util
import json
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from edge.events.tracker import INSTALL
from edge.frame import Result
from edge.sinks.base import Sink, SinkConfig, SinkContext
from edge.sinks.results import ResultsSink

if TYPE_CHECKING:
    from edge.events import Tracking


class EventsSink(ResultsSink):
    """Each result's events, then (at close) the run's last ``end`` events, as JSON lines."""

    def __init__(self, target, mode: str = "append", tracking: Tracking | None = None) -> None:
        super().__init__(target, include_latency=False, mode=mode)
        self.tracking, self.written = tracking, 0

    def write(self, result: Result) -> None:
        self._write(getattr(result, "events", None) or [])

    def _write(self, events: list[dict]) -> None:
        if not events:
            return
        if self._stream is None:
            self.start()
        for event in events:
            self._stream.write(json.dumps(event, sort_keys=True) + "\n")
        self._stream.flush()
        self.written += len(events)

    def close(self) -> None:
        try:
            if self.tracking is not None:
                self._write(self.tracking.finish())
        finally:
            super().close()

    def summary(self) -> str:
        where = "standard output" if self._path is None else f"'{self._path}'"
        return f"events: {self.written} written to {where}"


class EventsConfig(SinkConfig):
    """``[events]``: tracked objects and their events (docs/events.md)."""

    enabled: bool = Field(default=False, description="track the detected objects across frames and make events "
                                                     "(needs the events extra: " + INSTALL + ")")
    path: str = Field(default="", description="the events log, JSON lines: a file, '-' for standard output, or "
                                              "empty for none (unit: path)")
    existing: Literal["append", "rotate", "replace"] = Field(
        default="append", description="an existing events log is appended to, rotated to NAME.1 (five kept), or "
                                      "replaced")
    tracker: Literal["bytetrack", "ocsort"] = Field(default="bytetrack", description="the tracking method (Roboflow's "
                                                                                     "trackers package)")
    labels: list[str] = Field(default_factory=list, description="track only objects of these labels (class names; "
                                                                "empty: every label)")
    min_score: float = Field(default=0.0, ge=0, le=1, description="the score a detection needs to start a track; "
                                                                  "lower ones only continue tracks (ByteTrack's "
                                                                  "second association)")
    min_frames: int = Field(default=2, ge=1, le=1000, description="consecutive frames a new track needs before its "
                                                                  "object is confirmed and gets a 'new' event (unit: "
                                                                  "frames)")
    match_iou: float = Field(default=0.1, gt=0, le=1, description="the least IoU between a track's predicted box "
                                                                  "and a detection for them to match")
    end_after_s: float = Field(default=5.0, gt=0, le=86400, description="an object not seen for this long ends "
                                                                        "(unit: seconds of frame time)")
    end_after_frames: int = Field(default=0, ge=0, le=1_000_000, description="an object not seen in this many "
                                                                             "frames ends; 0: end_after_s decides "
                                                                             "(unit: frames)")
    stationary_frames: int = Field(default=50, ge=1, le=1_000_000, description="frames an object stays put before it "
                                                                               "counts as stationary (Frigate's "
                                                                               "threshold; unit: frames)")
    score_step: float = Field(default=0.05, ge=0, le=1, description="an 'update' event when the object's top score "
                                                                    "has risen this much since its last event")

    @model_validator(mode="after")
    def _consistent(self) -> EventsConfig:
        if self.path and not self.enabled:
            raise ValueError("events.path is set but events.enabled is false; set [events] enabled = true (or leave "
                             "path empty)")
        missing = [name for name in ("trackers", "supervision") if importlib.util.find_spec(name) is None]
        if self.enabled and missing:
            raise ValueError(f"events.enabled = true needs Roboflow's trackers package (the events extra), and "
                             f"{missing[0]!r} is not installed; run: {INSTALL}")
        return self

    def build(self, context: SinkContext) -> Sink | None:
        if not (self.enabled and self.path):
            return None
        mode = "replace" if context.replay else self.existing
        return EventsSink(self.path, mode=mode, tracking=context.tracking)
