"""Events on real videos, through the real path: ``keycam replay`` of opencv-doc's videos through keyed detectors with
``[events]`` on. Every tracked object has exactly one ``new`` and one ``end`` event, every detection in the results
names its object (or null), and the results are otherwise the same as without tracking.

- Megamind.avi (a face, 270 frames) through the shipped face detector, keyed: a long track for the face, zones;
  and the same frames forwarded to a server (the forwarding sink answers and tracks them) give the same results
  and events, byte for byte.
- vtest.avi (768 x 576, people walking) through ultralytics' YOLOv8n export (random weights made to detect,
  tests/export/detection.py's session fixture), keyed: tens of boxes a frame; the whole video is a slow test.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import onnx
import pytest

from edge.errors import ModelError
from tests.edge.servers import ThreadServer
from tests.edge.sinks.test_mqtt import broker  # noqa: F401 - Debian's mosquitto
from tests.export.detection import yolo  # noqa: F401 - the session's YOLOv8n exports
from tests.inprocess import keycam

VIDEOS = Path("/usr/share/doc/opencv-doc/examples/data")
FACES_TASK = '[task]\nkind = "detect"\ndecoder = "ssd"\niou_threshold = 0.3\nnames = ["face"]\n'


def _video(name: str) -> Path:
    path = VIDEOS / name
    if not path.is_file():
        pytest.skip(f"{path} is missing: scripts/setup-venv.sh test installs Debian's opencv-doc")
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _replay(video: Path, folder: Path, config: str, *options: str) -> tuple[list[dict], list[dict]]:
    """(results, events) of ``keycam replay VIDEO`` with this configuration."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "keycam.toml").write_text(config)
    done = keycam("replay", video, "--config", folder / "keycam.toml", "--output", folder / "results.jsonl",
                  *options)
    assert done.returncode == 0, done.stderr
    events = folder / "events.jsonl"
    return _lines(folder / "results.jsonl"), _lines(events) if events.exists() else []


def _check_lifecycles(results: list[dict], events: list[dict]) -> dict[str, list[dict]]:
    """Every object: one new, then updates, then one end, in frame order; every detection names an object that has
    events, or null. Returns the events by object."""
    by_object = defaultdict(list)
    for event in events:
        assert event["before"]["id"] == event["after"]["id"]
        by_object[event["after"]["id"]].append(event)
    for found in by_object.values():
        kinds = [e["type"] for e in found]
        assert kinds[0] == "new" and kinds[-1] == "end" and set(kinds[1:-1]) <= {"update"}, kinds
        assert [e["sequence"] for e in found] == sorted(e["sequence"] for e in found)
    tracks = {d["track"] for r in results for d in r["outputs"]["detections"]}
    assert tracks - {None} <= set(by_object) and set(by_object) <= tracks
    return by_object


def _without_tracks(results: list[dict]) -> list[dict]:
    for r in results:
        for d in r["outputs"]["detections"]:
            d.pop("track", None)
    return results


@pytest.fixture(scope="module")
def faces(tmp_path_factory, key):
    """(the face detector keyed for the tests' key, the key file)."""
    from edge import default

    folder = tmp_path_factory.mktemp("faces")
    try:
        keyed = default.default_detector(folder, key)
    except ModelError as error:
        pytest.skip(str(error))
    key.save(folder / "test.key")
    return keyed, folder / "test.key"


@pytest.fixture(scope="module")
def key():
    import hashlib

    from firmware_sim.keys import MasterKey

    return MasterKey(hashlib.sha256(b"keycam tests").digest())


def _faces_config(folder: Path, faces, frames: int = 0, forward: str = "", events: bool = True) -> str:
    keyed, key_file = faces
    model = f'[model]\npath = "{keyed}"\nkey = "{key_file}"\n' if not forward else \
        f'[model]\nkey = "{key_file}"\n[forward]\nurl = "{forward}"\nmodel = "face"\nspool = "{folder / "spool"}"\n'
    text = model + FACES_TASK + f"[loop]\nmax_frames = {frames}\n"
    if not events:
        return text
    return (text + f'[events]\nenabled = true\npath = "{folder / "events.jsonl"}"\n'
            "[zones.left]\ncoordinates = [[0, 0], [360, 0], [360, 528], [0, 528]]\n"
            "[zones.right]\ncoordinates = [[360, 0], [720, 0], [720, 528], [360, 528]]\n")


def test_megamind_the_face_detector_gives_each_face_one_new_and_one_end(faces, tmp_path):
    video = _video("Megamind.avi")
    results, events = _replay(video, tmp_path / "events", _faces_config(tmp_path / "events", faces))
    assert len(results) == 270
    by_object = _check_lifecycles(results, events)
    longest = max((found[-1]["after"] for found in by_object.values()), key=lambda after: after["frames"])
    assert longest["frames"] >= 150 and longest["label"] == "face"  # the face, most of the clip
    assert longest["last_seen"] - longest["first_seen"] >= 6.0 and longest["entered_zones"]
    assert all(set(e["after"]) >= {"id", "label", "score", "top_score", "box", "current_zones", "first_seen",
                                   "last_seen", "stationary"} for e in events)
    plain, _ = _replay(video, tmp_path / "plain", _faces_config(tmp_path / "plain", faces, 60, events=False))
    assert all("track" not in d for r in plain for d in r["outputs"]["detections"])
    assert plain == _without_tracks(results[:60])  # the per-frame answers are the same, track ids aside


def test_forwarded_answers_are_tracked_as_local_ones(faces, tmp_path):
    from export.package.triton import export_triton

    video = _video("Megamind.avi")
    local = _replay(video, tmp_path / "local", _faces_config(tmp_path / "local", faces, 60))
    export_triton(faces[0], tmp_path / "repo", "face")
    from firmware_sim.keys import MasterKey

    with ThreadServer(tmp_path / "repo", key=MasterKey.load(faces[1])) as server:  # the detector reads sealed frames
        forwarded = _replay(video, tmp_path / "forwarded", _faces_config(tmp_path / "forwarded", faces, 60,
                                                                         forward=server.url))
    assert (tmp_path / "forwarded" / "results.jsonl").read_bytes() == (tmp_path / "local" / "results.jsonl").read_bytes()
    assert (tmp_path / "forwarded" / "events.jsonl").read_bytes() == (tmp_path / "local" / "events.jsonl").read_bytes()
    assert forwarded[1] and _check_lifecycles(*local)


def _vtest(yolo, folder: Path, frames: int, more: str = "", labels: list | None = None):  # noqa: F811
    """vtest.avi through the keyed YOLOv8n (boundary) at 320 x 320; a score threshold that keeps tens of boxes.
    ``more``: more configuration; ``labels``: a list to fill with the model's labels before the run."""
    from edge.runtime import KeyedModel
    from export.keyify import KeyifyOptions, keyify
    from export.package.save import save

    video = _video("vtest.avi")
    keyed, key_file = folder / "yolo.onnx", folder / "test.key"
    folder.mkdir(parents=True, exist_ok=True)
    import hashlib

    from firmware_sim.keys import MasterKey

    key = MasterKey(hashlib.sha256(b"keycam tests").digest())
    key.save(key_file)
    save(keyify(onnx.load(yolo((320, 320), False)), key, KeyifyOptions(std=(255.0,))), keyed)
    if labels is not None:
        labels.extend(KeyedModel(keyed, key).manifest.labels)
    config = (f"[task]\nscore_threshold = 0.8\n[loop]\nmax_frames = {frames}\n[events]\nenabled = true\n"
              f'path = "{folder / "events.jsonl"}"\nend_after_frames = 10\n'
              "[zones.street]\ncoordinates = [[0, 288], [768, 288], [768, 576], [0, 576]]\n")
    config += more(labels) if callable(more) else more
    return _replay(video, folder, config, "--model", keyed, "--key", key_file)


def test_vtest_every_track_of_a_keyed_yolo_has_one_new_and_one_end(yolo, tmp_path):  # noqa: F811
    results, events = _vtest(yolo, tmp_path / "vtest", 40)
    assert len(results) == 40 and sum(len(r["outputs"]["detections"]) for r in results) >= 200
    by_object = _check_lifecycles(results, events)
    assert len(by_object) >= 5 and max(f[-1]["after"]["frames"] for f in by_object.values()) >= 30


def test_vtest_tracks_and_zones_reach_a_real_mosquitto_as_events(yolo, broker, tmp_path):  # noqa: F811
    """The done-when of issue 22 over MQTT: vtest.avi through a keyed YOLO, `keycam replay` with [events], two zones
    (one with a minimum size) and [mqtt] on Debian's mosquitto, every label published (random weights: its labels
    are its class indices, and a person is whichever it finds). On the broker: each track one `new` and one `end`
    (the run's end included), the events the log has, in its order; a zone entered only by a box whose bottom centre
    is inside and, for the sized zone, large enough; the zone's count topics going up and back to 0."""
    from tests.edge.sinks.test_mqtt import Listener, wait

    sized = 400_000  # px²: random weights find boxes of most of the frame (768 x 576), some larger than this
    mqtt = lambda names: (f'[zones.big]\ncoordinates = [[0, 0], [768, 0], [768, 576], [0, 576]]\nmin_area = {sized}\n'
                          f'inertia = 1\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\ndevice_id = "vtest"\n'
                          f"labels = {json.dumps(names)}\n")  # noqa: E731
    listener = Listener(broker.port, ("keycam/vtest/#",))
    try:
        results, events = _vtest(yolo, tmp_path / "vtest", 40, mqtt, labels=[])
        wait(lambda: listener.get("keycam/vtest/availability")[-1:] == ["offline"])
        with listener.lock:
            seen = {topic: list(found) for topic, found in listener.messages.items()}
    finally:
        listener.close()
    by_object = _check_lifecycles(results, events)
    published = [json.loads(p) for p in seen["keycam/vtest/events"]]
    assert len(by_object) >= 5 and len(published) == len(events)  # every event of the log, once
    assert [(e["type"], e["after"]) for e in published] == [
        (e["type"], {**e["after"], "camera": "vtest"}) for e in events]  # the same, in the log's order
    kinds = defaultdict(list)
    for event in published:
        kinds[event["after"]["id"]].append(event["type"])
    assert all(found.count("new") == found.count("end") == 1 for found in kinds.values()) and len(kinds) == len(
        by_object)
    entered = defaultdict(set)
    for event in published:
        before, after = event["before"], event["after"]
        new = set(after["current_zones"]) - (set() if event["type"] == "new" else set(before["current_zones"]))
        if "street" in after["current_zones"]:  # boxes in camera pixels: x0, y0, x1, y1
            assert after["box"][3] >= 288  # the bottom centre in the street
        if "big" in new:
            box = after["box"]
            assert (box[2] - box[0]) * (box[3] - box[1]) >= sized  # entered only large enough
        for zone in new:
            entered[zone].add(after["id"])
    assert entered["street"] and entered["big"] and len(entered["big"]) < len(by_object)  # the filter took some
    for zone in ("street", "big"):
        counts = {t: [int(v) for v in found] for t, found in seen.items()
                  if t.startswith(f"keycam/vtest/zones/{zone}/") and not t.endswith("/active")}
        assert max(max(found) for found in counts.values()) >= 1  # occupied, said on the broker
        assert all(found[-1] == 0 for found in counts.values())  # and empty again at the end
        assert all(a != b for found in counts.values() for a, b in zip(found, found[1:]))  # on change only


@pytest.mark.slow
def test_vtest_whole_video(yolo, tmp_path):  # noqa: F811
    results, events = _vtest(yolo, tmp_path / "vtest", 0)
    assert len(results) == 795
    _check_lifecycles(results, events)
