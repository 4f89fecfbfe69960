"""What travels through the capture loop: a :class:`Frame`, then its :class:`Result`.

A frame is the one carrier of a measurement's provenance: where it came from (``origin``), when
(``timestamp_ns``: wall-clock UTC nanoseconds for live sources, the recorded time for recordings, files
and videos, so replays keep their times; ``monotonic_ns``: the device's own clock, for intervals), its
place in the run (``sequence``), and, once
it has been read out, the key it was measured with (``fingerprint``) and the key epoch (``epoch``).
Every stage after the source hands the same frame on; a result holds its frame rather than copies
of these fields, so provenance is written once and cannot drift between stages.

``plain`` holds the plain sensor frame beside a measurement only when a sink asked for it with the
explicit debug flag (``keycam record --plain-debug``); the loop passes it to no other sink.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Frame:
    image: np.ndarray | None  # (H, W, C) codes: plain in the source's channel order, or the measurement
    sequence: int  # 0, 1, 2, ... in the order the source produced them
    timestamp_ns: int  # when it was captured: UTC nanoseconds for live sources; a recording's or file's own time
    origin: str  # where it came from: a file name, a camera, a stream
    measured: bool = False  # True once ``image`` is a private measurement
    epoch: int = 0  # key epoch of a measurement
    fingerprint: str = ""  # the key a measurement was made with ("" when the source does not know it)
    plain: np.ndarray | None = field(default=None, repr=False, compare=False)  # debug recording only
    readout_ms: float = field(default=0.0, repr=False, compare=False)  # time the readout stage took, if it ran
    source_size: tuple[int, int] | None = None  # (width, height) of the camera frame before it was fitted
    monotonic_ns: int = field(default=0, compare=False)  # the device's monotonic clock at capture (0: unknown)
    masks: str = ""  # the digest of the privacy masks it was read out under ("" : none; edge.masks)
    seal: object | None = field(default=None, repr=False, compare=False)  # edge.seal.Seal of a sealed measurement

    def replace(self, **changes) -> Frame:
        return dataclasses.replace(self, **changes)


@dataclass
class Result:
    """One frame's answer. ``tensors`` are the raw outputs of the stages run so far, by name; ``outputs`` the
    answer made of them (``edge.answers``).

    With tracking on (``[events] enabled``; ``edge.events.Tracking``, run right after the answer stage, for local
    and forwarded answers alike), each detection in ``outputs["detections"]`` has ``"track"`` (its object's id, or
    None while the tracker has not confirmed it), and:

    - ``events``: the events this frame produced, in order (an empty list when nothing changed): each
      ``{"type": "new" | "update" | "end", "sequence": int, "before": state, "after": state}``, Frigate's
      ``frigate/events`` payload; a state is ``{"id", "label", "score", "top_score", "box", "area",
      "current_zones", "entered_zones", "first_seen", "last_seen", "end_time", "frames", "stationary",
      "motionless_count", "position_changes"}`` (``edge.events.objects``; times in seconds of frame time);
      ``update`` comes only when the zones, stationary/moving or the top score (by ``score_step``) changed.
      The ``end`` events of objects still in view when the run stops come from ``Tracking.finish()``
      (``SinkContext.tracking``), not on a Result.
    - ``zones``: the occupancy after this frame, ``{"frame": {"counts": {label: n}, "active": {label: n}},
      "zones": {name: {"counts": {...}, "active": {...}}}}``: the tracked objects in view (from ``new`` to
      ``end``) by label, and those of them not stationary, in the whole frame and in each configured zone
      (every zone is there; a label with no object is absent, i.e. 0). A sink publishes on change by comparing
      it with what it published last.

    Without tracking ``events`` is empty and ``zones`` None."""

    frame: Frame
    outputs: dict = field(default_factory=dict)
    latency_ms: dict = field(default_factory=dict)
    error: str | None = None  # a forwarded frame the server refused (its outputs are then empty)
    tensors: dict = field(default_factory=dict, repr=False, compare=False)
    payload: np.ndarray | None = field(default=None, repr=False, compare=False)  # forwarding: what leaves the device
    events: list = field(default_factory=list, repr=False, compare=False)  # tracking: this frame's events
    zones: dict | None = field(default=None, repr=False, compare=False)  # tracking: the occupancy after this frame

    @property
    def sequence(self) -> int:
        return self.frame.sequence

    @property
    def epoch(self) -> int:
        return self.frame.epoch

    @property
    def fingerprint(self) -> str:
        return self.frame.fingerprint

    @property
    def measurement(self) -> np.ndarray | None:
        return self.frame.image

    def without_plain(self) -> Result:
        """This result with no plain frame attached (what every sink but a debug recorder gets)."""
        if self.frame.plain is None:
            return self
        return dataclasses.replace(self, frame=self.frame.replace(plain=None))

    def to_dict(self, include_latency: bool = True) -> dict:
        frame = self.frame
        record = {"sequence": frame.sequence, "timestamp_ns": frame.timestamp_ns, "origin": frame.origin,
                  "fingerprint": frame.fingerprint, "epoch": frame.epoch, "outputs": self.outputs}
        if frame.masks:
            record["masks"] = frame.masks
        if self.error is not None:
            record["error"] = self.error
        if include_latency:
            record["latency_ms"] = {k: round(v, 3) for k, v in self.latency_ms.items()}
        return record
