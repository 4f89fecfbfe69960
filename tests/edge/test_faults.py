"""Faults, as a device meets them: stop signals at random points, SIGKILL mid-recording, a full disk under the
recording and under the spool. Every frame is counted as delivered, spooled, or reported lost, and the counts
add up; nothing ends in a traceback; a damaged file is never read back as good. Signals go to real `keycam`
processes; the rest runs `keycam` in this process (tests/inprocess.py)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.recording import RecordingInfo, read_recording
from edge.wire.client import V2Client, connect
from tests.edge.servers import ProcessServer, ThreadServer, free_port
from tests.inprocess import keycam

KEYCAM = str(Path(sys.executable).with_name("keycam"))


@contextlib.contextmanager
def small_disk(where: Path, size: str):
    """A tmpfs of ``size`` mounted at ``where`` (needs root: skipped elsewhere)."""
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _frames(folder: Path, count: int, period_ms: int = 40) -> Path:
    """``count`` 28x28 frames whose file times are ``period_ms`` apart (a realtime replay paces them)."""
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(count):
        path = folder / f"f{i:04d}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (28, 28), np.uint8))
        os.utime(path, ns=(i * period_ms * 1_000_000, i * period_ms * 1_000_000))
    return folder


def _frames_in(stderr: str) -> int:
    line = next(line for line in stderr.splitlines() if line.startswith("keycam: ") and " frames at " in line)
    return int(line.split("keycam: ")[1].split(" frames")[0])


def test_a_full_disk_under_the_recording_ends_the_run_in_one_line_and_the_file_stays_readable(tmp_path):
    with small_disk(tmp_path / "disk", "8k") as disk:
        done = keycam("record", str(disk / "r.mcap"), "--max-frames", "20", timeout=120, cwd=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("keycam record: error:") and "No space left on device" in last
        info = RecordingInfo()
        frames = list(read_recording(disk / "r.mcap", info=info))  # what reached the disk reads back, intact
        assert len(frames) < 20 and not info.damaged


@pytest.mark.parametrize("target", ["r.mcap", "segments"])
def test_a_disk_that_fills_at_the_last_chunk_reports_the_frames_the_recording_holds(tmp_path, target):
    """The chunk being filled is written as the run ends; when that write fails, the summary counts the frames a
    reader finds (not every frame given), the run says it stopped by an error, and it exits 1 in one line."""
    from edge.default import default_model
    from firmware_sim.keys import MasterKey

    key = MasterKey.generate()
    key.save(tmp_path / "k.key")
    model = default_model(tmp_path, key)
    _frames(tmp_path / "frames", 300)
    (tmp_path / "c.toml").write_text(f'[source]\nkind = "folder"\npath = "{tmp_path / "frames"}"\n[model]\n'
                                     f'path = "{model}"\nkey = "{tmp_path / "k.key"}"\n[results]\npath = "{tmp_path / "out.jsonl"}"\n')
    with small_disk(tmp_path / "disk", "200k") as disk:
        done = keycam("record", str(disk / target), "--config", str(tmp_path / "c.toml"), timeout=120, cwd=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("keycam record: error:"), done.stderr
        assert "stopped by end of source" not in done.stderr and "recorded " in done.stderr, done.stderr
        said = next((line for line in done.stderr.splitlines() if "recorded " in line), done.stderr)
        counted = int(said.split("recorded ")[1].split(" ")[0])
        files = [disk / target] if target.endswith(".mcap") else sorted((disk / target).glob("*.mcap"))
        readable = 0
        for path in files:
            info = RecordingInfo()
            readable += len(list(read_recording(path, info=info)))
            assert not info.damaged
        assert 0 < counted == readable < 300, (said, readable)


def test_a_full_disk_under_the_spool_counts_every_frame_as_spooled_or_lost(repository, tmp_path):
    folder, key = repository
    with small_disk(tmp_path / "disk", "48k") as disk:
        with ThreadServer(folder / "repo") as server:  # to cache the server's model, then it is gone
            connect(V2Client(server.url), "fmnist", "", key.fingerprint, disk / "spool")
            url = server.url
        config = tmp_path / "keycam.toml"
        config.write_text(f'[source]\nkind = "folder"\npath = "{_frames(tmp_path / "frames", 200, 1)}"\n'
                          f'[model]\nkey = "{folder / "device.key"}"\n[results]\npath = "{tmp_path / "out.jsonl"}"\n'
                          f'[forward]\nurl = "{url}"\nmodel = "fmnist"\nspool = "{disk / "spool"}"\ndrain_s = 0.5\n'
                          f'retry_min_s = 0.05\n')
        done = keycam("run", "--config", str(config), timeout=120)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("keycam run: error: spool")
        summary = next(line for line in done.stderr.splitlines() if "forwarded to" in line)
        spooled = int(summary.split(" spooled")[0].rsplit(" ", 1)[1])
        lost = int(summary.split(" lost")[0].rsplit(" ", 1)[1])
        on_disk = len(list((disk / "spool").glob("*.kcs")))
        assert lost >= 1 and spooled == on_disk and spooled + lost == _frames_in(done.stderr)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigterm_at_a_random_point_of_forwarding_persists_every_frame(repository, tmp_path, seed):
    folder, key = repository
    port = free_port()
    frames = _frames(tmp_path / "frames", 1000)  # 40 s at 25 fps: the signal, never the end, stops the run
    server = ProcessServer(folder / "repo", port).start()
    config = tmp_path / "keycam.toml"
    config.write_text(f'[source]\nkind = "folder"\npath = "{frames}"\n[loop]\nrealtime = true\n'
                      f'[model]\nkey = "{folder / "device.key"}"\n[results]\npath = "{tmp_path / "out.jsonl"}"\n'
                      f'[forward]\nurl = "{server.url}"\nmodel = "fmnist"\nspool = "{tmp_path / "spool"}"\n'
                      f'retry_min_s = 0.05\nretry_max_s = 0.2\n')
    rng = random.Random(seed)
    try:
        process = subprocess.Popen([KEYCAM, "run", "--config", str(config)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not ((tmp_path / "out.jsonl").exists() and (tmp_path / "out.jsonl").read_text()):  # running
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        time.sleep(rng.uniform(0.1, 1.5))
        if seed == 2:
            server.kill()  # the server gone too: some frames go to the spool
            time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)  # hang protection only
    finally:
        server.stop()
    assert process.returncode == 143 and "Traceback" not in stderr, stderr
    answered = len((tmp_path / "out.jsonl").read_text().splitlines())
    waiting = len(list((tmp_path / "spool").glob("*.kcs")))
    assert answered + waiting == _frames_in(stderr) < 1000  # stopped early, and not one frame unaccounted for


def test_sigkill_at_random_points_of_a_recording_leaves_only_intact_frames(tmp_path):
    frames = _frames(tmp_path / "frames", 400, 5)
    rng = random.Random(7)
    for attempt in range(3):
        out = tmp_path / f"r{attempt}.mcap"
        process = subprocess.Popen([KEYCAM, "replay", str(frames), "--record", str(out), "--output",
                                    str(tmp_path / f"o{attempt}.jsonl"), "--realtime"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, cwd=tmp_path)
        time.sleep(rng.uniform(1.0, 2.0))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        if not out.exists():
            continue
        info = RecordingInfo()
        read = list(read_recording(out, info=info))
        assert not info.damaged  # cut short, never damaged: every frame read back is whole
        assert [f.sequence for f in read] == list(range(len(read)))
        done = keycam("replay", str(out), "--output", str(tmp_path / "back.jsonl"), timeout=60, cwd=tmp_path)
        assert "Traceback" not in done.stderr and done.returncode in (0, 1), done.stderr


def test_a_run_killed_mid_segment_restarts_into_a_new_segment_and_keeps_every_complete_chunk(tmp_path):
    """A service recording into a folder, SIGKILLed, started again: the killed segment reads back up to its last
    complete chunk (cut short, never damaged), and the restart records into a new segment beside it."""
    from edge.recording import list_segments

    frames = _frames(tmp_path / "frames", 400, 40)
    config = tmp_path / "keycam.toml"
    config.write_text(f'[source]\nkind = "folder"\npath = "{frames}"\n[loop]\nrealtime = true\n'
                      f'[record]\npath = "{tmp_path / "rec"}"\n')
    process = subprocess.Popen([KEYCAM, "run", "--config", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, cwd=tmp_path)
    def recording() -> bool:  # a few chunks written
        return (tmp_path / "rec").exists() and any(s.size > 600_000 for s in list_segments(tmp_path / "rec"))

    deadline = time.monotonic() + 120
    while not recording():
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    done = keycam("run", "--config", str(config), "--max-frames", "5", timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    killed, restarted = list_segments(tmp_path / "rec")
    info = RecordingInfo()
    read = list(read_recording(killed.path, info=info))
    assert info.truncated and not info.damaged and len(read) >= 10
    assert [f.sequence for f in read] == list(range(len(read)))
    assert [f.sequence for f in read_recording(restarted.path)] == list(range(5))


def _npy_with_header(header: str) -> bytes:
    """A .npy file of format 1.0 whose header is ``header`` (padded as numpy pads it), and a few bytes of data."""
    text = header.encode("latin1")
    padding = 64 - (10 + len(text) + 1) % 64
    body = text + b" " * padding + b"\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body + bytes(64)


HOSTILE_NPY = {
    "unbalanced": "{'descr': '|u1', 'fortran_order': False, 'shape': (28, 28",  # tokenize.TokenError in numpy
    "huge": "{'descr': '|u1', 'fortran_order': False, 'shape': (99999999, 99999999, 3), }",  # 28 PB promised
    "object": "{'descr': '|O', 'fortran_order': False, 'shape': (28, 28), }",
}


def test_hostile_npy_frames_are_skipped_and_counted_in_a_folder_and_refused_in_one_line_by_scramble(tmp_path):
    from edge.default import default_model
    from firmware_sim.keys import MasterKey

    key = MasterKey.generate()
    key.save(tmp_path / "k.key")
    model = default_model(tmp_path, key)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(2):
        np.save(folder / f"good{i}.npy", np.full((28, 28, 1), 40 * i, np.uint8))
    for name, header in HOSTILE_NPY.items():
        (folder / f"{name}.npy").write_bytes(_npy_with_header(header))
    done = keycam("replay", str(folder), "--model", str(model), "--key", str(tmp_path / "k.key"), "--output",
                  str(tmp_path / "out.jsonl"), timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert f"{len(HOSTILE_NPY)} skipped" in done.stderr, done.stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    for name in HOSTILE_NPY:
        refused = keycam("scramble", "--key", str(tmp_path / "k.key"), str(folder / f"{name}.npy"),
                         str(tmp_path / "o.npy"), timeout=60, cwd=tmp_path)
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "not a readable .npy array" in refused.stderr and not (tmp_path / "o.npy").exists()
