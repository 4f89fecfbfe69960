"""A tracked object's lifecycle on synthetic tracks (a scripted tracker gives the ids): one ``new``, an ``update``
only when something that matters changed, one ``end`` after the configured absence (frames or seconds) or when
the run finishes; the detections carry their object's id; keypoints and masks ride along; the occupancy."""

from __future__ import annotations

import json

import pytest

from tests.edge.events.tracks import detection, events, result, scripted


def _walk(frames: int, start=(100, 100), step=(10, 0), size=(50, 100), tid: int = 1, **extra) -> list[list[dict]]:
    """One person walking ``step`` pixels a frame, tracked as ``tid``."""
    x, y = start
    return [[detection([x + i * step[0], y + i * step[1], x + i * step[0] + size[0], y + i * step[1] + size[1]],
                       id=tid, **extra)] for i in range(frames)]


def test_one_object_is_new_once_and_ends_once_after_its_absence_in_frames():
    frames = _walk(6) + [[]] * 5
    frames[0][0]["id"] = -1  # the tracker confirms it on its second frame
    tracking, results = scripted(frames, end_after_frames=3)
    found = events(results)
    assert [(kind, seq) for kind, _, seq in found] == [("new", 1), ("end", 8)]  # last seen at 5: 3 frames missed
    (end,) = [e for r in results for e in r.events if e["type"] == "end"]
    after = end["after"]
    assert after["first_seen"] == 0.1 and after["last_seen"] == 0.5 and after["end_time"] == 0.8
    assert after["frames"] == 5 and after["box"] == [150.0, 100.0, 200.0, 200.0] and after["label"] == "person"
    assert after["id"] == "0.100000-000001" and end["before"]["end_time"] is None
    assert results[0].outputs["detections"][0]["track"] is None  # not confirmed yet
    assert {r.outputs["detections"][0]["track"] for r in results[1:6]} == {after["id"]}
    assert tracking.finish() == [] and tracking.counts == {"new": 1, "end": 1}


def test_the_absence_in_seconds_is_frame_time_not_frames():
    tracking, _ = scripted([], end_after_s=5.0)
    tracking.tracker.ids = [1, 1]
    timed = [(True, 0.0), (True, 1.0), (False, 3.0), (False, 5.9), (False, 6.0)]  # irregular frames
    results = [tracking(result(i, [detection([0, 0, 10, 10])] if seen else [], seconds=when))
               for i, (seen, when) in enumerate(timed)]
    assert events(results) == [("new", "0.000000-000001", 0), ("end", "0.000000-000001", 4)]  # 5 s after 1.0
    assert results[4].events[0]["after"]["end_time"] == 6.0


def test_updates_only_when_the_zones_the_stationary_state_or_the_top_score_change():
    scores = [0.60, 0.61, 0.62, 0.66, 0.60, 0.70, 0.71, 0.72]  # 0.05 over the last event's top at frames 3 and 6
    frames = [[detection([0, 0, 50, 100], score=s, id=1)] for s in scores]
    _, results = scripted(frames, score_step=0.05, stationary_frames=100)
    assert [(kind, seq) for kind, _, seq in events(results)] == [("new", 0), ("update", 3), ("update", 6)]
    update = results[3].events[0]
    assert update["before"]["top_score"] == 0.6 and update["after"]["top_score"] == 0.66
    assert results[4].events == []  # a lower score is no news


def test_entering_and_leaving_a_zone_are_updates_and_the_occupancy_follows():
    zones = {"drive": {"coordinates": [[200, 0], [400, 0], [400, 400], [200, 400]], "inertia": 2}}
    frames = _walk(30, start=(100, 100), step=(10, 0))  # the bottom centre crosses x = 200 at frame 8, 400 at 28
    _, results = scripted(frames, zones=zones, stationary_frames=1000, score_step=1)
    updates = [(e["sequence"], e["after"]["current_zones"]) for r in results for e in r.events if e["type"] == "update"]
    assert updates == [(9, ["drive"]), (28, [])]  # inertia 2: inside at 8 and 9; out at once at 28
    assert results[28].events[0]["after"]["entered_zones"] == ["drive"]
    assert results[9].zones == {"frame": {"counts": {"person": 1}, "active": {"person": 1}},
                                "zones": {"drive": {"counts": {"person": 1}, "active": {"person": 1}}}}
    assert results[8].zones["zones"]["drive"] == {"counts": {}, "active": {}}


def test_a_still_object_becomes_stationary_and_moving_again_counts_a_position_change():
    still = [[detection([100, 100, 200, 300], id=1)] for _ in range(6)]
    moved = [[detection([300, 100, 400, 300], id=1)]]
    _, results = scripted(still + moved, stationary_frames=4, score_step=1)
    kinds = [(kind, seq) for kind, _, seq in events(results)]
    assert kinds == [("new", 0), ("update", 4), ("update", 6)]
    became, left = results[4].events[0]["after"], results[6].events[0]["after"]
    assert became["stationary"] and became["motionless_count"] == 4
    assert not left["stationary"] and left["position_changes"] == 1 and left["motionless_count"] == 0
    assert results[5].zones["frame"] == {"counts": {"person": 1}, "active": {}}  # in view, not moving


def test_a_box_that_wobbles_by_a_pixel_still_counts_as_still():
    wobble = [[detection([100 + (i % 2), 100, 200 + (i % 2), 300], id=1)] for i in range(5)]
    _, results = scripted(wobble, stationary_frames=3, score_step=1)  # IoU 0.98 > Frigate's 0.9 while moving
    assert results[3].events and results[3].events[0]["after"]["stationary"]


def test_objects_still_in_view_end_when_the_run_finishes_and_every_caller_gets_the_same_events():
    frames = [[detection([0, 0, 10, 10], id=1), detection([50, 0, 60, 10], name="car", id=1)] for _ in range(3)]
    tracking, results = scripted(frames, end_after_frames=100)
    first = tracking.finish()
    assert tracking.finish() == first and [e["type"] for e in first] == ["end", "end"]
    assert {e["after"]["label"] for e in first} == {"person", "car"}  # one id per label: two objects
    assert all(e["sequence"] == 2 and e["after"]["end_time"] == 0.2 for e in first)
    found = events(results, first)
    for obj in {oid for _, oid, _ in found}:
        assert [kind for kind, oid, _ in found if oid == obj] == ["new", "end"]
    assert tracking.occupancy() == {"frame": {"counts": {}, "active": {}}, "zones": {}}


def test_a_frame_without_an_answer_tells_nothing():
    tracking, _ = scripted(_walk(2), end_after_frames=1)
    refused = tracking(result(2, [], error="the server refused it"))
    assert refused.events == [] and refused.zones["frame"]["counts"] == {"person": 1}
    assert tracking(result(3, [])).events[0]["type"] == "end"


def test_only_the_configured_labels_are_tracked_and_every_detection_says_its_track():
    frames = [[detection([0, 0, 10, 10], id=1), detection([20, 0, 30, 10], name="car")] for _ in range(2)]
    _, results = scripted(frames, labels=["person"])
    for r in results:
        person, car = r.outputs["detections"]
        assert person["track"] == "0.000000-000001" and car["track"] is None
    assert {e["after"]["label"] for r in results for e in r.events} == {"person"}


def test_keypoints_and_masks_ride_along_with_their_detection():
    mask = {"pixels": 100, "polygons": [[[0, 0], [10, 0], [10, 10]]]}
    first = detection([0, 0, 10, 10], id=1, keypoints=[[5, 5, 0.9]], mask=mask)
    second = detection([100, 0, 110, 10], name="dog", id=1, keypoints=[[105, 5, 0.8]])
    _, (r,) = scripted([[first, second]])
    a, b = r.outputs["detections"]
    assert a["keypoints"] == [[5, 5, 0.9]] and a["mask"] == mask and b["keypoints"] == [[105, 5, 0.8]]
    assert a["track"] != b["track"] and {e["after"]["id"] for e in r.events} == {a["track"], b["track"]}


def test_an_object_the_tracker_revives_after_its_end_is_a_new_object():
    frames = [[detection([0, 0, 10, 10], id=7)], [], [], [detection([0, 0, 10, 10], id=7)]]
    _, results = scripted(frames, end_after_frames=2)
    found = events(results)
    assert [kind for kind, _, _ in found] == ["new", "end", "new"] and found[0][1] != found[2][1]


def test_event_times_never_go_back_even_when_a_source_clock_does():
    tracking, _ = scripted([], end_after_frames=5)
    tracking.tracker.ids = [1, 1]
    a = tracking(result(0, [detection([0, 0, 10, 10])], seconds=11.0))
    b = tracking(result(1, [detection([0, 0, 10, 10])], seconds=0.0))  # OpenCV gives a file's last frame time 0
    assert a.events[0]["after"]["last_seen"] == 11.0
    assert tracking.finish()[0]["after"]["last_seen"] == 11.0 and b.outputs["detections"][0]["track"]


def test_events_hold_no_picture_and_are_json():
    _, results = scripted(_walk(3))
    text = json.dumps([e for r in results for e in r.events])
    assert len(text) < 2000 and "snapshot" not in text and "thumbnail" not in text


@pytest.mark.parametrize("setting, value", [("end_after_s", 0), ("min_frames", 0), ("score_step", 2),
                                            ("stationary_frames", 0), ("tracker", "norfair")])
def test_events_settings_are_bounded(setting, value):
    from pydantic import ValidationError

    from edge.sinks.events import EventsConfig

    with pytest.raises(ValidationError):
        EventsConfig(enabled=True, **{setting: value})
