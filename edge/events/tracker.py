"""Identities across frames, from a maintained tracker package: Roboflow's ``trackers`` (Apache-2.0).

``trackers`` is a clean-room implementation of ByteTrack, OC-SORT, SORT and BoT-SORT over numpy and SciPy (a
Kalman filter per track, Hungarian matching on IoU); its CI checks each tracker's HOTA, MOTA and IDF1 on DanceTrack
and SportsMOT against fixed figures.
It is the events extra (docs/events.md, "Installing"): ``trackers`` and ``supervision`` are installed with
``--no-deps``, because they declare ``opencv-python``, which would overwrite keycam's ``opencv-python-headless``
(the two install the same ``cv2``); the extra lists what they import instead. It is imported only when a run
tracks, so the device core loads without it.

:class:`Tracker` tracks each label (class name) apart, as Frigate tracks each object type: a person's box is
never matched to a car's track. It does so with one tracker, not one per label, by the trick batched NMS uses:
each label's boxes are moved to a plane of their own, ``SPREAD`` pixels from the others' (farther than any box or
any prediction of a lost track reaches), so that no two labels' boxes ever overlap and IoU never matches them;
the trackers' Kalman filters and matching are translation-invariant, so nothing else changes, and a frame costs
one update whatever the number of labels. The ids it gives back are matched to the detections through their
indices (``trackers`` returns them reordered); -1 is a detection with no confirmed track (new, or not matched).

The tracker keeps a lost track for as long as the events keep its object (``end_after``): a number of frames
(``lost_track_buffer`` at its reference 30 fps is exactly that many frames), or seconds, when the frames' own
times are handed to it (then it predicts motion over the real interval between frames).
"""

from __future__ import annotations

import math

import numpy as np

from edge.errors import ConfigError

KINDS = ("bytetrack", "ocsort")
SPREAD = 100_000.0  # pixels between two labels' planes
REFERENCE_FPS = 30.0  # trackers' lost-track buffers are counted in frames of a 30 fps video
INSTALL = "pip install 'keycam[events]' && pip install --no-deps trackers==2.6.1 supervision==0.31.2"


def _package():
    """(supervision, {kind: tracker class}), or a one-line error that says how to install them."""
    try:
        import supervision
        from trackers import ByteTrackTracker, OCSORTTracker
    except ImportError as error:
        raise ConfigError(f"[events] tracks objects with Roboflow's trackers package, and {error.name!r} is not "
                          f"installed; install the events extra: {INSTALL}") from None
    return supervision, {"bytetrack": ByteTrackTracker, "ocsort": OCSORTTracker}


class Tracker:
    """A ``trackers`` tracker, each label on its own plane; ``end_after_frames`` (> 0) or ``end_after_s`` is how
    long a lost track is kept."""

    def __init__(self, kind: str = "bytetrack", *, min_score: float = 0.0, min_frames: int = 2,
                 match_iou: float = 0.1, end_after_frames: int = 0, end_after_s: float = 5.0) -> None:
        if kind not in KINDS:
            raise ConfigError(f"events.tracker = {kind!r}; use one of {', '.join(KINDS)}")
        self._sv, classes = _package()
        self.by_time = end_after_frames <= 0
        buffer = end_after_frames if not self.by_time else math.ceil(end_after_s * REFERENCE_FPS)
        options = {"lost_track_buffer": max(1, buffer), "frame_rate": REFERENCE_FPS,
                   "minimum_consecutive_frames": min_frames, "minimum_iou_threshold": match_iou,
                   "high_conf_det_threshold": min_score}  # ByteTrack: below it, its second, low-score association
        if kind == "bytetrack":
            options["track_activation_threshold"] = min_score  # what may start a track
        self.kind = kind
        self._tracker = classes[kind](**options)
        self._planes: dict[str, np.ndarray] = {}

    def _plane(self, label: str) -> np.ndarray:
        """The shift (dx, dy, dx, dy) of a label's plane: planes in rows of 16, in the order labels are first seen."""
        if label not in self._planes:
            k = len(self._planes)
            self._planes[label] = np.array([k % 16, k // 16, k % 16, k // 16], np.float64) * SPREAD
        return self._planes[label]

    def update(self, boxes: np.ndarray, scores: np.ndarray, labels: list[str], seconds: float) -> np.ndarray:
        """The track id of each detection (boxes (n, 4) x0, y0, x1, y1 in camera pixels, their scores and labels), -1
        for none; ``seconds``: the frame's time, strictly increasing (used when the events end by time)."""
        count = len(labels)
        ids = np.full(count, -1, np.int64)
        if not count and not self._tracker.tracks:
            return ids  # nothing to match and nothing to age
        shift = np.asarray([self._plane(label) for label in labels], np.float64).reshape(count, 4)
        detections = self._sv.Detections(xyxy=np.asarray(boxes, np.float64).reshape(count, 4) + shift,
                                          confidence=np.asarray(scores, np.float32).reshape(count),
                                          data={"index": np.arange(count)})
        tracked = self._tracker.update(detections, timestamp=seconds if self.by_time else None)
        if len(tracked):
            ids[tracked.data["index"]] = tracked.tracker_id
        return ids
