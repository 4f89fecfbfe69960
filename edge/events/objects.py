"""A tracked object's life: what it is, where it has been, and the state its events carry.

An object is born when the tracker confirms a track (``new``), is updated every frame it is seen, and ends after
an absence (``end``). Its state, the ``before`` and ``after`` of its events (Frigate's ``frigate/events``
payload, without pictures), is :meth:`TrackedObject.state`:

    id             "<first_seen>-<n>": the first frame's time (seconds, 6 decimals) and the run's object count
    label          the class name (the results file's "class")
    score          this object's score in the last frame it was seen; top_score: its best
    box            [x0, y0, x1, y1] in camera pixels, where it was last seen; area: the box's, in pixels squared
    current_zones  the zones it is in now; entered_zones: every zone it has entered, in order (edge.events.zones)
    first_seen     seconds: the frame's timestamp_ns / 1e9 (UTC for live sources, a recording's or file's own
    last_seen      time in replays), of the frame where the tracker confirmed it, and of the last frame it was seen
    end_time       null, or the time of the frame at which it ended
    frames         frames it was seen in
    stationary     whether it has stayed put for ``stationary_frames`` frames; motionless_count: the frames it has
    position_changes   stayed put; position_changes: the times it moved off after being stationary (Frigate's)

Stationary is Frigate's rule, on the boxes alone: a box whose IoU with the mean of the boxes of its current still
spell (the last 10) is at least 0.9 while the object moves, or 0.6 once it is stationary, keeps it still
(``motionless_count`` + 1); a lower IoU starts a new spell there. It is stationary after ``stationary_frames``
still frames, and moving again on the first frame it leaves its spot.

An ``update`` is due only when something that matters changed since the object's last event: the zones it is in,
stationary or moving, or a top score at least ``score_step`` above the last event's.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from edge.events.zones import Presence, box_area

STILL_IOU_MOVING = 0.9  # Frigate's THRESHOLD_ACTIVE_CHECK_IOU
STILL_IOU_STATIONARY = 0.6  # Frigate's THRESHOLD_STATIONARY_CHECK_IOU
STILL_HISTORY = 10  # Frigate's MAX_STATIONARY_HISTORY


def iou(a, b) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def seconds(timestamp_ns: int) -> float:
    """A frame's time in seconds, to the microsecond (Frigate's unit)."""
    return round(timestamp_ns / 1e9, 6)


@dataclass
class TrackedObject:
    id: str
    label: str
    first_seen: float
    box: list = field(default_factory=list)
    score: float = 0.0
    top_score: float = 0.0
    last_seen: float = 0.0
    clock: float = 0.0  # the tracking clock (strictly increasing seconds) when it was last seen
    frames: int = 0
    missed: int = 0  # frames since it was last seen
    end_time: float | None = None
    motionless: int = 0
    position_changes: int = 0
    stationary: bool = False
    presence: Presence = field(default_factory=Presence)
    published: dict | None = None  # the state its last event carried: the next event's ``before``
    _still: deque = field(default_factory=lambda: deque(maxlen=STILL_HISTORY))

    def see(self, box: list, score: float, when: float, clock: float, stationary_frames: int) -> None:
        """Seen in this frame at ``box`` (camera pixels) with ``score``."""
        self.box, self.score = [round(float(v), 2) for v in box], round(float(score), 6)
        self.top_score = max(self.top_score, self.score)
        self.last_seen, self.clock = when, clock
        self.frames += 1
        self.missed = 0
        self._move(self.box, stationary_frames)

    def _move(self, box: list, stationary_frames: int) -> None:
        if self._still:
            count = len(self._still)
            mean = [sum(past[i] for past in self._still) / count for i in range(4)]  # 10 boxes: no numpy needed
            threshold = STILL_IOU_STATIONARY if self.stationary else STILL_IOU_MOVING
            if iou(box, mean) >= threshold:
                self.motionless += 1
            else:
                if self.stationary:
                    self.position_changes += 1
                self.motionless = 0
                self._still.clear()
        self._still.append(box)
        self.stationary = self.motionless >= stationary_frames

    def state(self) -> dict:
        """What an event says of the object now (see the module's docstring)."""
        return {"id": self.id, "label": self.label, "score": self.score, "top_score": self.top_score,
                "box": list(self.box), "area": round(box_area(self.box), 2),
                "current_zones": list(self.presence.current), "entered_zones": list(self.presence.entered),
                "first_seen": self.first_seen, "last_seen": self.last_seen, "end_time": self.end_time,
                "frames": self.frames, "stationary": self.stationary, "motionless_count": self.motionless,
                "position_changes": self.position_changes}

    def changed(self, score_step: float) -> bool:
        """Something that matters changed since the last event: zones, stationary or moving, a better top score."""
        last = self.published
        if last is None:
            return True
        better = self.top_score - last["top_score"]
        return (set(last["current_zones"]) != set(self.presence.current) or last["stationary"] != self.stationary
                or (better > 0 and better >= score_step - 1e-9))

    def event(self, kind: str, sequence: int) -> dict:
        """The event ``kind`` (new, update, end) at frame ``sequence``: ``before`` the last event's state (the same
        as ``after`` for ``new``), ``after`` the state now."""
        after = self.state()
        before = self.published if self.published is not None else after
        self.published = after
        return {"type": kind, "sequence": sequence, "before": before, "after": after}
