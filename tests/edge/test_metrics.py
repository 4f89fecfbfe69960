"""The metrics endpoint as dashboards read it (edge.metrics, edge.sinks.metrics): scraped over HTTP on 127.0.0.1 and
parsed by prometheus_client's own parser, and, where Prometheus' promtool is installed, checked by it.

- keycam_fps is over the last seconds (a stepped clock: no wall-clock assertion), and keycam_frames_total counts;
- the answers are counted by bounded label (the model's class names, else ``other``), the tracker's events by type,
  zone entries and occupancy by zone and label;
- a real short run of the embedded default's face detector over opencv-doc's Megamind.avi with [events], two zones
  and [metrics] on: scraped while it runs, it serves process_*, python_*, keycam_build_info (the key's fingerprint,
  never the key), face detections and zone entries.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.frame import Frame, Result
from edge.metrics import FrameRate, MetricsServer
from edge.sinks.metrics import AnswerCounts
from tests.inprocess import keycam

MEGAMIND = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")


class SteppedClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 64.0

    def __call__(self) -> float:
        return self.now


def _scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()


def _samples(text: str) -> dict[str, float]:
    """Every sample of a scrape, parsed by prometheus_client's parser: ``name{label="value",...}`` -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.documentation, family.name  # every family says what it is
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return found


def test_keycam_fps_is_over_the_last_seconds_and_falls_to_zero_when_frames_stop():
    clock = SteppedClock()  # steps of 1/8, 1/64 and 1/128 s: exact in binary, so the window's edge is exact
    rate = FrameRate(window_s=10.0, clock=clock)
    assert rate() == 0.0
    for _ in range(25):  # 8 frames a second for 3 s
        rate.tick()
        clock.now += 0.125
    assert rate() == pytest.approx(24 / 3.125)  # younger than the window: the intervals since the first frame
    for _ in range(100):
        rate.tick()
        clock.now += 0.125
    assert rate() == pytest.approx(8.0)  # the frames of the last 10 s
    for _ in range(128):  # then 64 a second for 2 s
        rate.tick()
        clock.now += 1 / 64
    assert rate() == pytest.approx((64 + 128) / 10)
    clock.now += 10.015625
    assert rate() == 0.0  # nothing answered in the window
    kept = FrameRate(window_s=10.0, kept=50, clock=clock)
    for _ in range(200):  # 128 a second: more frames in the window than it keeps
        kept.tick()
        clock.now += 1 / 128
    assert kept() == pytest.approx(128.0)


def _result(sequence: int, detections=(), events=(), zones=None) -> Result:
    frame = Frame(np.zeros((4, 4, 3), np.uint8), sequence, 1_000 + sequence, "test", measured=True)
    result = Result(frame, {"detections": [{"box": [0, 0, 1, 1], "class": name, "score": 0.9} for name in detections]})
    result.events, result.zones = list(events), zones
    return result


def _event(kind: str, label: str, before: list[str], after: list[str]) -> dict:
    state = {"id": "1.0-000001", "label": label, "score": 0.9, "top_score": 0.9, "box": [0, 0, 1, 1]}
    return {"type": kind, "sequence": 0, "before": {**state, "current_zones": before},
            "after": {**state, "current_zones": after}}


def _occupancy(frame: dict, zones: dict) -> dict:
    return {"frame": {"counts": frame, "active": {}}, "zones": {n: {"counts": c, "active": {}} for n, c in zones.items()}}


def test_answers_are_counted_by_bounded_label_and_zone_and_served_over_http():
    counts = AnswerCounts(("person", "car"), ("porch", "drive"), tracking=True)
    counts.write(_result(0, ["person", "person", "car", "<script>"],
                         [_event("new", "person", ["porch"], ["porch"]), _event("new", "car", [], [])],
                         _occupancy({"person": 1, "car": 1}, {"porch": {"person": 1}, "drive": {}})))
    counts.write(_result(1, ["person"], [_event("update", "person", ["porch"], ["porch", "drive"]),
                                         _event("update", "car", [], ["nowhere"])],
                         _occupancy({"person": 1}, {"porch": {"person": 1}, "drive": {"person": 1}})))
    counts.write(_result(2, [], [_event("end", "person", ["porch", "drive"], ["porch", "drive"])],
                         _occupancy({}, {"porch": {}, "drive": {}})))
    server = MetricsServer("127.0.0.1", 0)
    try:
        server.watch_answers(counts)
        server.frames.inc(3)
        found = _samples(_scrape(server.port))
    finally:
        server.close()
    assert {k: v for k, v in found.items() if k.startswith("keycam_detections")} == {
        'keycam_detections_total{label="person"}': 3.0, 'keycam_detections_total{label="car"}': 1.0,
        'keycam_detections_total{label="other"}': 1.0}  # text no model names is never a label
    assert found['keycam_events_total{type="new"}'] == 2.0 and found['keycam_events_total{type="update"}'] == 2.0
    assert found['keycam_events_total{type="end"}'] == 1.0 and found["keycam_frames_total"] == 3.0
    assert {k: v for k, v in found.items() if k.startswith("keycam_zone_entries")} == {
        'keycam_zone_entries_total{label="person",zone="porch"}': 1.0,
        'keycam_zone_entries_total{label="person",zone="drive"}': 1.0}  # a zone not configured counts nothing
    assert found['keycam_objects{label="person"}'] == 0.0 and found['keycam_objects{label="car"}'] == 0.0  # gone
    assert found['keycam_zone_objects{label="person",zone="drive"}'] == 0.0
    assert found["process_cpu_seconds_total"] > 0 and found["process_resident_memory_bytes"] > 0
    assert any(k.startswith("python_info{") for k in found) and any(k.startswith("python_gc_") for k in found)
    (build,) = [k for k in found if k.startswith("keycam_build_info{")]
    assert re.search(r'onnxruntime="\d+\.', build) and re.search(r'python="3\.', build) and 'version="' in build


def test_a_model_without_class_names_is_counted_by_class_number_and_anything_else_is_other():
    counts = AnswerCounts()
    counts.write(_result(0, ["3", "3", "999", "1000", "a person"]))
    assert counts.snapshot()["detections"] == {"3": 2, "999": 1, "other": 2}
    assert not counts.snapshot()["tracking"] and counts.snapshot()["events"] == {}


def _promtool() -> str | None:
    beside = Path(sys.executable).with_name("promtool")  # where scripts/setup-venv.sh test puts it
    return shutil.which("promtool") or (str(beside) if beside.is_file() else None)


def _promtool_check(text: str) -> None:
    checked = subprocess.run([_promtool(), "check", "metrics"], input=text, capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), (
        checked.stdout + checked.stderr)


class _Camera:
    """What ``watch_source`` reads of a source: a Raspberry Pi camera's health, as PicameraSource.health gives it."""

    def health(self) -> dict[str, float]:
        return {"camera_dropped_frames": 3.0, "camera_timeouts": 1.0, "camera_late_frames": 2.0,
                "sensor_temperature_celsius": 41.5, "camera_af_state": 2.0, "sensor_black_level": 4096.0}


class _Forwarding:
    """What ``watch_forwarding`` reads of the forwarding sink: its ForwardStats, alarm and pending frames."""

    def __init__(self, stats) -> None:
        self.stats, self.alarm, self.pending = stats, False, 4


def test_every_forwarding_counter_and_the_cameras_health_are_served_and_pass_promtool():
    from dataclasses import fields

    from edge.sinks.forward import ForwardStats

    stats = ForwardStats(**{field.name: number for number, field in enumerate(fields(ForwardStats), 1)})
    server = MetricsServer("127.0.0.1", 0)
    try:
        server.watch_forwarding(_Forwarding(stats))
        server.watch_source(_Camera())
        text = _scrape(server.port)
    finally:
        server.close()
    found = _samples(text)
    for field in fields(ForwardStats):  # lost and waited were kept by the sink but never served
        assert found[f"keycam_forward_{field.name}_total"] == getattr(stats, field.name), field.name
    assert found["keycam_forward_pending"] == 4.0 and found["keycam_forward_alarm"] == 0.0
    assert found["keycam_source_camera_dropped_frames_total"] == 3.0
    assert found["keycam_source_sensor_temperature_celsius"] == 41.5
    if _promtool() is not None:
        _promtool_check(text)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """(the scrape taken once the run had answered 10 frames and a face had entered a zone, every keycam_fps
    scraped, the run's stderr): ``keycam run`` of the embedded default's face detector over Megamind.avi at its
    recorded speed, [events] on with two zones, [metrics] on a free port, scraped from another thread as it runs."""
    if not MEGAMIND.is_file():
        pytest.skip(f"{MEGAMIND} is missing: scripts/setup-venv.sh test installs Debian's opencv-doc")
    folder, port = tmp_path_factory.mktemp("metrics-run"), _free_port()
    (folder / "keycam.toml").write_text(
        f'[source]\nkind = "video"\npath = "{MEGAMIND}"\n[loop]\nrealtime = true\nmax_frames = 60\n'
        f'[results]\npath = "{folder / "results.jsonl"}"\n[metrics]\nport = {port}\n[events]\nenabled = true\n'
        "[zones.left]\ncoordinates = [[0, 0], [360, 0], [360, 528], [0, 528]]\n"
        "[zones.right]\ncoordinates = [[360, 0], [720, 0], [720, 528], [360, 528]]\n")
    seen: dict = {"text": None, "fps": []}
    ended = threading.Event()

    def scrape() -> None:
        while not ended.is_set() and seen["text"] is None:
            try:
                text = _scrape(port)
            except OSError:  # not up yet, or the run is over
                time.sleep(0.05)
                continue
            found = _samples(text)
            seen["fps"].append(found.get("keycam_fps", 0.0))
            entered = sum(v for k, v in found.items() if k.startswith('keycam_zone_entries_total{label="face"'))
            if entered >= 1 and found.get("keycam_frames_total", 0) >= 10:
                seen["text"] = text
            time.sleep(0.05)

    scraper = threading.Thread(target=scrape, name="scraper", daemon=True)
    scraper.start()
    done = keycam("run", "--config", folder / "keycam.toml")
    ended.set()
    scraper.join(timeout=30)
    assert done.returncode == 0, done.stderr
    assert seen["text"] is not None, f"no scrape during the run showed 10 frames and a zone entry: {seen['fps']}"
    return seen["text"], seen["fps"], done.stderr


def test_a_real_run_serves_what_dashboards_expect(real_run, default_folder):
    text, fps, stderr = real_run
    found = _samples(text)
    assert found["keycam_frames_total"] >= 10 and found['keycam_detections_total{label="face"}'] >= 1
    assert found["keycam_up"] == 1.0 and found['keycam_events_total{type="new"}'] >= 1
    assert found['keycam_stage_seconds_count{stage="model"}'] >= 10
    assert any(value > 0 for value in fps)  # frames per second over the last seconds, while it ran
    assert found["process_cpu_seconds_total"] > 0 and found["process_open_fds"] > 0
    assert any(k.startswith("python_gc_objects_collected_total") for k in found)
    (build,) = [k for k in found if k.startswith("keycam_build_info{")]
    fingerprint = re.search(r"key (kc1:[0-9a-f]{16})", stderr).group(1)
    assert f'fingerprint="{fingerprint}"' in build and re.search(r'policy="(boundary|fresh)"', build)
    assert re.search(r'readout_spec="\d+"', build)
    secret = (default_folder / "default.key").read_bytes()
    assert secret.hex() not in text.lower() and secret.hex().upper() not in text  # the fingerprint, never the key


def test_promtool_accepts_a_real_scrape(real_run):
    if _promtool() is None:
        pytest.skip("Prometheus' promtool is not installed (scripts/setup-venv.sh test takes it from Debian's "
                    "prometheus package into the venv; or: sudo apt-get install prometheus)")
    _promtool_check(real_run[0])
