"""The tracker adapter over Roboflow's ``trackers``: ids matched back to the detections they belong to (the package
returns them reordered), one tracker per label, OC-SORT as well as ByteTrack, lost tracks kept as long as the
events keep their object; and a missing package refused in one line that says how to install it, by the schema
(so ``validate-config`` refuses it too) and by the tracker."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
from pydantic import ValidationError

from edge.errors import ConfigError
from edge.events.tracker import Tracker
from edge.sinks.events import EventsConfig


def _boxes(t: int) -> np.ndarray:
    """Three people walking apart, 8 px a frame, x0, y0, x1, y1."""
    return np.array([[10 + 8 * t, 50, 60 + 8 * t, 150], [300 - 8 * t, 50, 350 - 8 * t, 150],
                     [150, 200 + 8 * t, 200, 300 + 8 * t]], np.float64)


@pytest.mark.parametrize("kind", ["bytetrack", "ocsort"])
def test_each_detection_gets_its_own_track_whatever_order_it_comes_in(kind):
    tracker = Tracker(kind, min_frames=2, end_after_frames=10)
    rng = np.random.default_rng(0)
    seen = {0: set(), 1: set(), 2: set()}
    for t in range(12):
        order = rng.permutation(3)  # the detector's order changes from frame to frame
        ids = tracker.update(_boxes(t)[order], np.full(3, 0.9), ["person"] * 3, t / 10)
        for person, number in zip(order, ids):
            seen[int(person)].add(int(number))
    assert all(len(numbers - {-1}) == 1 for numbers in seen.values())  # one id each, from its second frame on
    assert len(set.union(*seen.values()) - {-1}) == 3


def test_labels_are_tracked_apart():
    tracker = Tracker(min_frames=1, end_after_frames=10)
    box = np.array([[100, 100, 200, 200]], np.float64)
    for t in range(3):
        person = tracker.update(box, np.ones(1), ["person"], t)
        car = tracker.update(box, np.ones(1), ["car"], t)
    assert person[0] >= 0 and car[0] >= 0 and person[0] != car[0]  # the same box: two tracks, never one
    both = tracker.update(np.concatenate([box, box]), np.ones(2), ["person", "car"], 3)
    assert list(both) == [person[0], car[0]]


def test_a_lost_track_is_kept_for_end_after_frames():
    tracker = Tracker(min_frames=1, end_after_frames=5)
    box = np.array([[100, 100, 200, 200]], np.float64)
    first = [tracker.update(box, np.ones(1), ["person"], t)[0] for t in range(3)][-1]
    for t in range(3, 7):
        tracker.update(np.zeros((0, 4)), np.zeros(0), [], t)  # gone 4 frames
    assert tracker.update(box, np.ones(1), ["person"], 7)[0] == first


def test_a_missing_package_is_refused_in_one_line_with_the_install_command(monkeypatch):
    real = builtins.__import__

    def without_trackers(name, *args, **kwargs):
        if name.split(".")[0] == "trackers":
            raise ImportError(f"No module named {name!r}", name="trackers")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_trackers)
    with pytest.raises(ConfigError, match=r"'trackers' is not installed; install the events extra: pip install "
                                          r"'keycam\[events\]' && pip install --no-deps trackers==2.6.1"):
        Tracker()
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(ValidationError, match="events.enabled = true needs Roboflow's trackers package"):
        EventsConfig(enabled=True)
    assert not EventsConfig().enabled  # off, nothing is needed
