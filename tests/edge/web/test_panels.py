"""The page's panels and its feed without a server: what the loop hands over (the newest result, short records), the
events list and its filters, the health the run knows, and the package data that carries the page."""

from __future__ import annotations

import fnmatch
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from edge.frame import Frame, Result
from edge.metrics import MetricsServer
from edge.sinks.web import Feed
from edge.web.panels import events, health

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[3]


def _result(sequence: int, detections=(), events_=(), latency=None) -> Result:
    frame = Frame(np.zeros((4, 4, 3), np.uint8), sequence, 1_000 + sequence, "test", measured=True, epoch=2)
    outputs = {"detections": list(detections), "counts": {}}
    result = Result(frame, outputs, dict(latency or {"model": 2.0}))
    result.events = list(events_)
    return result


def _event(kind: str, label: str, number: int, zones=()) -> dict:
    state = {"id": f"12.5-{number:06d}", "label": label, "score": 0.9, "top_score": 0.95, "box": [1, 2, 3, 4],
             "current_zones": list(zones), "entered_zones": list(zones), "stationary": False}
    return {"type": kind, "sequence": number, "before": None if kind == "new" else state, "after": state}


def test_the_feed_keeps_the_newest_result_and_short_records_and_counts_the_frames_missing():
    feed = Feed(keep=3)
    for sequence in (0, 1, 2, 5, 6, 9):  # 3, 4, 7 and 8 dropped by the loop, or failed in a stage
        feed.put(_result(sequence, detections=[{"box": [0, 0, 1, 1], "class": "face", "score": 0.9}]))
    recent, answers, received, lost = feed.snapshot()
    assert received == 6 and lost == 4 and feed.latest()[1].frame.sequence == 9
    assert [r[1] for r in answers] == [5, 6, 9] and len(recent) == 6  # the answers ring keeps the last 3
    assert all(not isinstance(item, np.ndarray) for record in recent for item in record)  # never a picture


def test_with_tracking_the_events_are_listed_newest_first_and_filtered_by_label_and_zone():
    feed = Feed(tracking=True)
    feed.put(_result(0, events_=[_event("new", "person", 1, ["porch"]), _event("new", "car", 2)]))
    feed.put(_result(1, detections=[{"box": [0, 0, 1, 1], "class": "person", "track": "12.5-000001"}]))  # no event
    feed.put(_result(2, events_=[_event("end", "person", 1, ["porch"])]))
    _, records, _, _ = feed.snapshot()
    found = events(records, True, ["porch", "drive"])
    assert found["mode"] == "events" and found["labels"] == ["car", "person"] and found["zones"] == ["porch", "drive"]
    assert [(e["type"], e["label"], e["sequence"]) for e in found["items"]] == [
        ("end", "person", 2), ("new", "car", 0), ("new", "person", 0)]
    assert [e["type"] for e in events(records, True, [], label="person")["items"]] == ["end", "new"]
    assert [e["label"] for e in events(records, True, [], zone="porch")["items"]] == ["person", "person"]
    assert events(records, True, [], zone="drive")["items"] == []


def test_without_tracking_each_frames_detections_are_listed():
    feed = Feed()
    feed.put(_result(0, detections=[{"box": [0, 0, 10, 10], "class": "face", "score": 0.8}]))
    feed.put(_result(1))  # nothing found: not kept
    feed.put(_result(2, detections=[{"box": [1, 1, 9, 9], "class": "face", "score": 0.7},
                                    {"box": [20, 20, 30, 30], "label": 3, "score": 0.6}]))
    _, records, _, _ = feed.snapshot()
    found = events(records, False, [])
    assert found["mode"] == "detections" and found["labels"] == ["3", "face"]
    assert [(d["sequence"], d["label"]) for d in found["items"]] == [(2, "face"), (2, "3"), (0, "face")]
    assert [d["score"] for d in events(records, False, [], label="face")["items"]] == [0.7, 0.8]


def test_the_health_panel_has_what_the_run_knows():
    page = SimpleNamespace(feed=Feed(), context=SimpleNamespace(key=SimpleNamespace(fingerprint="kc1:00")),
                           registry=None, run=None)
    for sequence in range(5):
        page.feed.put(_result(sequence, latency={"transform": 1.0, "model": 4.0 + sequence}))
    alone = health(page, {})
    assert alone["frames"] == 5 and alone["epoch"] == 2 and alone["stage_ms"] == {"transform": 1.0, "model": 6.0}
    assert alone["source"] is None and alone["sinks"] is None and alone["counters"] is None
    mqtt = SimpleNamespace(summary=lambda: "mqtt ...", client=SimpleNamespace(is_connected=lambda: False))
    spool = SimpleNamespace(summary=lambda: "forwarded ...", pending=7)
    page.run = SimpleNamespace(source=SimpleNamespace(health=lambda: {"sensor_temperature_celsius": 47.5}),
                               sinks=[page, mqtt, spool])
    metrics = MetricsServer("127.0.0.1", 0)
    try:
        metrics.frames.inc(5)
        page.registry = metrics.registry  # what WebSink.watch keeps
        found = health(page, {})
    finally:
        metrics.close()
    assert found["temperature_c"] == 47.5
    assert [s.get("connected") for s in found["sinks"]] == [False, None] and found["sinks"][1]["spool"] == 7
    assert found["counters"]["keycam_frames_total"] == 5.0


def test_the_package_ships_the_page():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["edge"]
    files = [p.relative_to(ROOT / "edge").as_posix() for p in (ROOT / "edge" / "web" / "static").iterdir()]
    assert {"web/static/index.html", "web/static/app.js", "web/static/style.css"} <= set(files)
    assert all(any(fnmatch.fnmatch(name, pattern) for pattern in patterns) for name in files), files
