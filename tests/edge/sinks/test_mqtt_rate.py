"""Messages per frame: at most one per event and one per state change, none when nothing changes.

- A synthetic 30 fps scene (10 s, 300 frames) for an 80-label detector, through the real tracking stage
  (edge.events.Tracking) and the MQTT sink connected to mosquitto: two people (one walks through a zone, one stands
  still until stationary), a parked car, and junk boxes of random labels every frame. Each frame's messages are
  exactly its events (of the published labels) and its changed state topics, counted independently here.
- (slow) opencv-doc's vtest.avi at 30 fps through ultralytics' YOLOv8n (80 labels, random weights), keyed, with
  `keycam replay`, events, a zone and the sink: what reaches the broker, per topic (docs/events.md, "What MQTT
  publishes, measured").
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import numpy as np
import pytest

from edge.frame import Frame, Result
from tests.edge.sinks.test_mqtt import Listener, broker, wait  # noqa: F401 - the broker fixture
from tests.export.detection import yolo  # noqa: F401 - the session's YOLOv8n exports (the slow test)

LABELS = ("person", "bicycle", "car", *(f"class{i}" for i in range(3, 80)))  # 80 labels, as COCO's
FPS = 30
DRIVEWAY = [[320, 200], [640, 200], [640, 480], [320, 480]]


def _scene(frames: int = 10 * FPS, seed: int = 7) -> list[list[dict]]:
    """Each frame's detections (camera pixels, 640 x 480)."""
    rng = np.random.default_rng(seed)
    scene, junk = [], []  # junk: [label, box, frames left]
    for i in range(frames):
        found = [("car", [400, 300, 560, 420], 0.9)]  # parked in the driveway all along
        if 30 <= i < 180:  # walks left to right, through the driveway
            x = 4 * (i - 30)
            found.append(("person", [x, 240, x + 60, 400], 0.8 + 0.1 * (i % 2)))
        if i >= 60:  # comes in and stands still
            found.append(("person", [100, 100, 150, 230], 0.85))
        for _ in range(rng.integers(0, 3)):  # junk: boxes of random labels, each still for 1 to 12 frames
            x, y = rng.integers(0, 560), rng.integers(0, 400)
            junk.append([LABELS[rng.integers(3, 80)], [x, y, x + 40, y + 40], rng.integers(1, 13)])
        found += [(name, box, 0.6) for name, box, _ in junk]
        junk = [[name, box, left - 1] for name, box, left in junk if left > 1]
        scene.append([{"box": [float(v) for v in box], "score": score, "label": LABELS.index(name), "class": name}
                      for name, box, score in found])
    return scene


def _states(zones: dict, labels: list[str]) -> dict[str, str]:
    """The state topics' values after a frame, computed here from result.zones (not by the sink)."""
    found = {}
    for where, name in [(zones["frame"], None), *((zones["zones"]["driveway"], "driveway"),)]:
        for label in labels:
            stem = f"keycam/cam1/{label}" if name is None else f"keycam/cam1/zones/{name}/{label}"
            found[stem] = str(where["counts"].get(label, 0))
            found[stem + "/active"] = str(where["active"].get(label, 0))
    return found


def _acknowledged(sink, seconds: float = 60.0) -> None:
    """Wait until the broker has acknowledged every message the sink queued (polled often: 300 frames wait)."""
    deadline = time.monotonic() + seconds  # hang protection only
    while sink.stats.delivered < sink.stats.published:
        assert time.monotonic() < deadline, "the broker never acknowledged"
        time.sleep(0.001)


def _run(port: int, listener: Listener, labels: list[str] | None):
    """The scene through tracking and the sink; per frame (events of the published labels, state changes, messages
    the sink published)."""
    from edge.events import Tracking, ZoneConfig
    from edge.sinks import SinkContext
    from edge.sinks.events import EventsConfig
    from edge.sinks.mqtt import MqttConfig

    tracking = Tracking(EventsConfig(enabled=True, end_after_s=1.0), {"driveway": ZoneConfig(coordinates=DRIVEWAY)})
    settings = {"labels": labels} if labels else {}
    sink = MqttConfig(host="127.0.0.1", port=port, device_id="cam1", **settings).build(
        SinkContext(None, None, labels=LABELS, tracking=tracking))
    published, publish, caller = [], sink._publish, threading.current_thread()
    announced = []  # what paho's network thread publishes: the connect's announcement, stale configs cleared

    def counted(topic, *args, **kwargs):
        (published if threading.current_thread() is caller else announced).append(topic)
        return publish(topic, *args, **kwargs)

    sink._publish = counted
    sink.start()
    wait(lambda: sink.stats.connects == 1)
    # the connect's announcement is over (availability, every config, the switches, every state) before the first
    # frame, so that no state goes out from both threads; a frame's row counts what its write() published
    wait(lambda: len(announced) >= 1 + len(sink.configs) + len(sink.discovery.switches)
         + len(sink.states.snapshot()[1]))
    wait(lambda: listener.count() >= 1 + len(sink.states.snapshot()[1]))  # and the broker has passed them on
    shown = sink.states.labels
    before, rows = _states({"frame": {"counts": {}, "active": {}},
                            "zones": {"driveway": {"counts": {}, "active": {}}}}, shown), []
    for i, detections in enumerate(_scene()):
        result = tracking(Result(Frame(np.zeros((1, 1, 3), np.uint8), i, i * 1_000_000_000 // FPS, "scene"),
                                 outputs={"detections": detections}))
        after = _states(result.zones, shown)
        events = [e for e in result.events if e["after"]["label"] in shown]
        published.clear()
        sink.write(result)
        # a camera's frames come 1/30 s apart, time enough for the broker's acknowledgements; this loop comes as
        # fast as it can, so it waits for them (paho's queue would fill and drop what a real camera never would)
        _acknowledged(sink)
        rows.append((len(events), sum(after[t] != before[t] for t in after), list(published)))
        before = after
    sink.close()
    return sink, tracking, rows


@pytest.mark.parametrize("labels", [None, list(LABELS)], ids=["default-person", "all-80-labels"])
def test_each_frame_publishes_its_events_and_its_state_changes_and_nothing_else(broker, labels):  # noqa: F811
    pytest.importorskip("trackers", reason="the events extra is not installed (scripts/setup-venv.sh test)")
    listener = Listener(broker.port, ("keycam/#",))
    try:
        sink, tracking, rows = _run(broker.port, listener, labels)
        wait(lambda: listener.get("keycam/cam1/availability")[-1:] == ["offline"])
    finally:
        listener.close()
    messages = [len(found) for _, _, found in rows]
    assert all(len(found) == events + changes for events, changes, found in rows)  # the bound, met exactly
    assert all(not found for events, changes, found in rows if not events and not changes)  # nothing: no message
    if labels is None:  # the people and the car: little happens, mostly silence (the junk is never published)
        assert sum(1 for n in messages if n == 0) > 0.9 * len(rows)
    allowed = ("keycam/cam1/events", "keycam/cam1/person", "keycam/cam1/zones/driveway/person") if labels is None \
        else ("keycam/cam1/events", *(f"keycam/cam1/{w}{n}" for n in LABELS for w in ("", "zones/driveway/")))
    assert all(t.startswith(allowed) for _, _, found in rows for t in found)
    kinds = Counter(json.loads(p)["type"] for p in listener.get("keycam/cam1/events"))
    assert kinds["new"] == kinds["end"] == (2 if labels is None else tracking.counts["new"])  # each ends, at close
    assert sink.stats.dropped == 0 and sink.stats.events == sum(kinds.values())
    events, changes, total = sum(r[0] for r in rows), sum(r[1] for r in rows), sum(messages)
    print(f"\n{'person' if labels is None else '80 labels'}: {len(rows)} frames at {FPS} fps: {total} messages "
          f"({events} events, {changes} state changes), {sum(1 for n in messages if n == 0)} frames with none, at "
          f"most {max(messages)} a frame, {total / len(rows):.3f} a frame; at the end "
          f"{sink.stats.events - events} events and {sink.stats.states - changes} state changes; "
          f"{len(sink.configs)} discovery configs; tracked {dict(tracking.counts)}")


def _replay(folder, port: int, config: str, device: str, mqtt: str) -> tuple[dict, list, list]:
    """``keycam replay`` of the 30 fps video with this configuration (``mqtt``: more [mqtt] settings): (messages by
    topic, results, events)."""
    from tests.inprocess import keycam

    (folder / f"{device}.toml").write_text(config + f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\ndevice_id = '
                                                    f'"{device}"\n{mqtt}')
    listener = Listener(port, (f"keycam/{device}/#",))
    try:
        done = keycam("replay", folder / "vtest30.avi", "--config", folder / f"{device}.toml", "--model",
                      folder / "yolo.onnx", "--key", folder / "k.key", "--output", folder / f"{device}.jsonl")
        assert done.returncode == 0, done.stderr
        wait(lambda: listener.get(f"keycam/{device}/availability")[-1:] == ["offline"])
        with listener.lock:
            seen = {topic: list(found) for topic, found in listener.messages.items()}
    finally:
        listener.close()
    lines = lambda path: [json.loads(line) for line in path.read_text().splitlines()]  # noqa: E731
    return seen, lines(folder / f"{device}.jsonl"), lines(folder / f"{device}-events.jsonl")


@pytest.mark.slow
def test_vtest_at_30_fps_through_a_keyed_80_label_yolo(yolo, broker, tmp_path):  # noqa: F811
    """The real path: `keycam replay` of vtest.avi (re-timed to 30 fps, 300 frames) through ultralytics' YOLOv8n
    (random weights made to detect; its labels are class0 ... class79, so its default label, class0, is one it may
    never find), keyed, with events, a zone and the MQTT sink, once for all 80 labels and once for the label it finds
    most (as a camera's person): what reaches the broker."""
    import cv2
    import onnx

    from edge.runtime import KeyedModel
    from export.keyify import KeyifyOptions, keyify
    from export.package.save import save
    from firmware_sim.keys import MasterKey

    source = cv2.VideoCapture("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
    if not source.isOpened():
        pytest.skip("opencv-doc's vtest.avi is missing (scripts/setup-venv.sh test installs it)")
    writer = cv2.VideoWriter(str(tmp_path / "vtest30.avi"), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (768, 576))
    for _ in range(300):
        writer.write(source.read()[1])
    writer.release()
    key = MasterKey.generate()
    key.save(tmp_path / "k.key")
    save(keyify(onnx.load(yolo((320, 320), False)), key, KeyifyOptions(std=(255.0,))), tmp_path / "yolo.onnx")
    names = KeyedModel(tmp_path / "yolo.onnx", key).manifest.labels
    assert len(names) == 80
    runs = [("all", names)]
    for device, wanted in runs:
        labels = f"labels = {json.dumps(wanted)}\n"
        config = (f'[task]\nscore_threshold = 0.8\n[events]\nenabled = true\n'
                  f'path = "{tmp_path / device}-events.jsonl"\n'
                  '[zones.street]\ncoordinates = [[0, 288], [768, 288], [768, 576], [0, 576]]\n')
        seen, results, events = _replay(tmp_path, broker.port, config, device, labels)
        base = f"keycam/{device}"
        states = {t: found for t, found in seen.items() if t not in (f"{base}/events", f"{base}/availability")
                  and not t.endswith("/state")}
        shown = {t.split("/")[2] for t in states if not t.startswith(f"{base}/zones/")}
        published = [e for e in events if e["after"]["label"] in shown]
        assert len(results) == 300 and len(shown) == len(wanted)
        assert len(seen.get(f"{base}/events", [])) == len(published)  # one message per event of a published label
        assert all(a != b for found in states.values() for a, b in zip(found, found[1:]))  # on change only
        changes = sum(len(found) - 1 for found in states.values())  # the first of each: the connect's 0
        boxes = sum(len(r["outputs"]["detections"]) for r in results)
        print(f"\nvtest at 30 fps, {device}: 300 frames, {boxes} boxes, {len(events)} events; published "
              f"{len(published)} events and {changes} state changes of {len(shown)} labels: "
              f"{(len(published) + changes) / 300:.3f} messages a frame (old sink: {2 * 80} a frame)")
        if device == "all":  # then the label it finds most, as a camera's one label (person, on a trained model)
            busiest = Counter(e["after"]["label"] for e in events if e["type"] == "new").most_common(1)[0][0]
            runs.append(("one", [busiest]))
