"""A folder of segments: named by their UTC start, a new one on every start (a restart never refuses, never
overwrites, loses nothing), rolled by time and size, retained by age and by size, oldest first, never the one being
written; a week at 320x320 stays within its budget (a fast clock: no test sleeps)."""

from __future__ import annotations

import calendar
import os
import time
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ImageFileError
from edge.frame import Frame, Result
from edge.recording import Recorder, RecordingInfo, Retention, SegmentedRecorder, list_segments, read_recording
from edge.recording.segments import LOCK, segment_name, segment_start
from firmware_sim.spec import DEFAULT_SPEC
from tests.edge.recording_helpers import measured
from tests.inprocess import keycam

START = calendar.timegm((2026, 12, 7, 0, 45, 12)) * 10**9  # 20261207T004512Z
SECOND, HOUR, DAY = 10**9, 3600 * 10**9, 86400 * 10**9


class Clock:
    """A fast clock: UTC nanoseconds that move only when told."""

    def __init__(self, now: int = START) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def _segmented(folder: Path, key, clock: Clock, retention: Retention = Retention(), chunk_size: int = 256 * 1024):
    def one(path: Path) -> Recorder:
        return Recorder(path, DEFAULT_SPEC, key.fingerprint, chunk_size=chunk_size)

    return SegmentedRecorder(folder, one, retention, clock=clock, chunk_size=chunk_size)


def _on_disk(folder: Path) -> int:
    return sum(segment.size for segment in list_segments(folder))


def _frames(folder: Path) -> list:
    info = RecordingInfo()
    frames = [f for s in list_segments(folder) for f in read_recording(s.path, info=info)]
    assert not info.damaged
    return frames


def test_names_are_the_utc_start_sortable_and_never_taken_twice():
    assert segment_name(START, set()) == "20261207T004512Z.mcap" and segment_start("20261207T004512Z.mcap") == START
    taken = {"20261207T004512Z.mcap"}
    assert segment_name(START + 999_999_999, taken) == "20261207T004512Z_001.mcap"
    names = ["20261207T004512Z.mcap", "20261207T004512Z_001.mcap", "20261207T004513Z.mcap"]
    assert sorted(names) == names  # a name sorts where its segment was made
    assert segment_start("notes.mcap") is None and segment_start("20261207T004512Z.mcap.tmp") is None


def test_every_start_opens_a_new_segment_and_a_restart_loses_nothing(tmp_path, key):
    clock = Clock()
    folder = tmp_path / "rec"
    (tmp_path / "rec").mkdir()
    (folder / "notes.txt").write_text("not a segment")
    results = measured(key, 4)
    for _ in range(3):  # three starts within one second: three segments, nothing refused or overwritten
        recorder = _segmented(folder, key, clock)
        for result in results:
            recorder.record(result)
        recorder.close()
    names = [s.name for s in list_segments(folder)]
    assert names == ["20261207T004512Z.mcap", "20261207T004512Z_001.mcap", "20261207T004512Z_002.mcap"]
    assert [f.sequence for f in _frames(folder)] == [0, 1, 2, 3] * 3
    assert (folder / "notes.txt").read_text() == "not a segment"  # keycam touches only its segments


def test_segments_roll_by_time_and_by_size(tmp_path, key):
    clock = Clock()
    recorder = _segmented(tmp_path / "rec", key, clock, Retention(segment_s=60, segment_mb=0.5), chunk_size=16 * 1024)
    for result in measured(key, 120):  # 2.3 kB frames, one every 2 s: a segment a minute, each below 0.5 MB
        recorder.record(result)
        clock.now += 2 * SECOND
    recorder.close()
    starts = [s.start_ns for s in list_segments(tmp_path / "rec")]
    assert len(starts) == 4 and all(b - a == 60 * SECOND for a, b in zip(starts, starts[1:]))
    recorder = _segmented(tmp_path / "big", key, Clock(), Retention(segment_mb=0.5), chunk_size=16 * 1024)
    for result in measured(key, 60, size=(96, 128)):  # 37 kB frames, the clock still: by size alone
        recorder.record(result)
    recorder.close()
    sizes = [s.size for s in list_segments(tmp_path / "big")]
    assert len(sizes) >= 4 and max(sizes) <= 500_000
    assert len(_frames(tmp_path / "big")) == 60


def test_keep_days_removes_whole_old_segments_never_the_one_being_written(tmp_path, key):
    clock = Clock()
    recorder = _segmented(tmp_path / "rec", key, clock, Retention(segment_s=3600, keep_days=1))
    seen = []
    for result in measured(key, 4 * 24 + 1, step_ns=HOUR):  # four days, a frame an hour, an hour a segment
        recorder.record(result)
        segments = recorder.segments()
        seen.append(segments[0].start_ns)
        assert segments[-1].writing and segments[-1].path.exists()
        assert clock.now - segments[0].start_ns <= DAY + 2 * HOUR  # nothing older than a day (and its segment)
        clock.now += HOUR
    recorder.close()
    assert seen == sorted(seen) and recorder.removed >= 3 * 24 - 2
    restarted = _segmented(tmp_path / "rec", key, Clock(clock.now + 5 * DAY), Retention(keep_days=1))
    restarted.start()  # a start checks too: everything from five days ago goes
    assert [s.writing for s in restarted.segments()] == [True]
    restarted.close()


def _week(folder: Path, key, keep_gb: float, frames: int) -> tuple[int, int, SegmentedRecorder]:
    """``frames`` measurements of 320 x 320 x 3 (noise, which zstd cannot shrink: the worst case), the fast clock
    moving a week over them; hourly segments (the default); the folder's bytes checked after every frame."""
    clock, step = Clock(), 7 * DAY // frames
    recorder = _segmented(folder, key, clock, Retention(segment_s=3600, keep_gb=keep_gb))
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (8, 320, 320, 3), np.uint8)
    largest = 0
    for i in range(frames):
        frame = Frame(codes[i % 8], i, clock.now, "week", measured=True, fingerprint=key.fingerprint,
                      source_size=(640, 480))
        recorder.record(Result(frame, outputs={"detections": [], "counts": {}}))
        largest = max(largest, _on_disk(folder) + recorder.current.size // 100 + 64 * 1024)  # + its summary, to come
        clock.now += step
    recorder.close()
    return largest, _on_disk(folder), recorder


def test_a_week_at_320x320_stays_within_its_budget(tmp_path, key):
    """The same week as the slow test below with the budget scaled down (20 MB, and 184 MB written, against 2 GB
    and 3 GB there): the retention's arithmetic does not depend on the scale."""
    largest, final, recorder = _week(tmp_path / "rec", key, keep_gb=0.02, frames=600)
    assert largest <= 20 * 10**6 and final <= 20 * 10**6
    segments = list_segments(tmp_path / "rec")
    # about hourly: a segment ends with the first frame past its hour (here 4 frames, 67 minutes)
    assert recorder.opened >= 140 and recorder.removed == recorder.opened - len(segments)
    assert final >= 0.8 * 20 * 10**6  # retention keeps about as much as the budget allows, no less
    newest = segments[-1].start_ns
    assert newest >= START + 7 * DAY - 2 * HOUR  # the last hours of the week are the ones kept
    frames = _frames(tmp_path / "rec")
    assert [f.sequence for f in frames] == list(range(600 - len(frames), 600))  # the newest, none missing


@pytest.mark.slow
def test_a_week_at_320x320_and_15_fps_stays_within_2_gb(tmp_path, key):
    """A week's segments at the real budget: 10,000 frames of 320 x 320 (3 GB), the clock moving a week over them
    (about a minute a frame). A real week at 15 fps writes 2.8 TB of such frames; 2 GB keeps its last 7 minutes."""
    largest, final, recorder = _week(tmp_path / "rec", key, keep_gb=2, frames=10_000)
    assert largest <= 2 * 10**9 and final <= 2 * 10**9 and final >= 1.6 * 10**9
    assert recorder.opened >= 140


def test_a_folder_in_use_is_refused_and_free_again_after_the_run(tmp_path, key):
    first = _segmented(tmp_path / "rec", key, Clock())
    first.start()
    with pytest.raises(ImageFileError, match="in use by another keycam run"):
        _segmented(tmp_path / "rec", key, Clock()).start()
    first.close()
    again = _segmented(tmp_path / "rec", key, Clock())
    again.start()
    again.close()
    assert (tmp_path / "rec" / LOCK).exists() and len(list_segments(tmp_path / "rec")) == 2


def test_folders_keycam_cannot_use_are_refused_before_anything_is_written(tmp_path, key):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ImageFileError, match="is a file"):
        _segmented(tmp_path / "file", key, Clock())
    with pytest.raises(ImageFileError, match="does not exist"):
        _segmented(tmp_path / "absent" / "rec", key, Clock())  # the last folder only: never a tree on the SD card
    assert not (tmp_path / "absent").exists()


def _config(tmp_path: Path, record: str) -> Path:
    path = tmp_path / "keycam.toml"
    path.write_text(f"[record]\n{record}\n")
    return path


@pytest.mark.parametrize("record, refusal", [
    ('path = "r.mcap"\nkeep_gb = 1', "record.keep_gb applies to a folder of segments"),
    ('path = "rec"\nkeep_gb = 1\nsegment_mb = 600', "more than half of record.keep_gb"),
    ('path = "rec"\nkeep_gb = 0.001', "below 0.01"),
    ('path = "r.txt"', "should be a folder (no suffix: segments) or a file ending in .mcap"),
    ('path = "absent/rec"', "does not exist"),
    ('path = "old.mcap"', "already exists"),  # what run refuses: it never replaces a recording
])
def test_validate_config_refuses_what_run_refuses_about_record(tmp_path, record, refusal):
    (tmp_path / "old.mcap").write_bytes(b"")
    config = _config(tmp_path, record)
    checked = keycam("validate-config", str(config), cwd=tmp_path)
    assert checked.returncode == 1 and refusal in checked.stderr and "Traceback" not in checked.stderr
    ran = keycam("run", "--config", str(config), "--max-frames", "1", cwd=tmp_path)
    assert ran.returncode == 1 and refusal in ran.stderr, ran.stderr
    assert ran.stderr.strip().count("\n") == 0  # one line


def test_keycam_run_restarted_records_into_a_new_segment_and_loses_nothing(tmp_path):
    config = _config(tmp_path, 'path = "rec"\nkeep_days = 30')
    assert keycam("validate-config", str(config), cwd=tmp_path).returncode == 0
    for _ in range(2):  # a service started twice: the second start neither refuses nor overwrites
        done = keycam("run", "--config", str(config), "--max-frames", "3", cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "recorded 3 measurements to rec (1 new segment)" in done.stderr
    segments = list_segments(tmp_path / "rec")
    assert len(segments) == 2 and len(_frames(tmp_path / "rec")) == 6
    assert abs(segments[0].start_ns - time.time_ns()) < 600 * SECOND  # named by the wall clock, UTC


def test_a_folder_of_segments_replays_oldest_first_and_holds_no_input(tmp_path, key):
    from edge.sources.recording import RecordingSource

    clock = Clock()
    for part in range(2):
        recorder = _segmented(tmp_path / "rec", key, clock)
        for result in measured(key, 3, start_ns=part * 10**9):
            recorder.record(result)
        recorder.close()
    with RecordingSource(tmp_path / "rec") as source:
        frames = list(source)
    assert [f.timestamp_ns // 10**6 for f in frames] == [0, 1, 2, 1000, 1001, 1002]
    segment = list_segments(tmp_path / "rec")[0].path
    done = keycam("replay", str(segment), "--record", str(tmp_path / "rec"), cwd=tmp_path)
    assert done.returncode == 1 and "keycam removes old segments there" in done.stderr
    assert os.path.exists(segment)
