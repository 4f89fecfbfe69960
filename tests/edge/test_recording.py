"""MCAP recordings of measurements: lossless, zstd-compressed, readable by the official reader, crash-tolerant
(docs/runtime.md, "Recordings"). The format against Foxglove's schemas: test_recording_format.py; segments and
retention: test_recording_segments.py."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
from mcap.reader import make_reader

from edge.errors import ImageFileError
from edge.recording import (FRAME_TOPIC, MEASUREMENT_TOPIC, PLAIN_TOPIC, Recorder, RecordingInfo, frame_count,
                            read_recording)
from edge.transform import AdcTransform
from firmware_sim.spec import DEFAULT_SPEC, PRESETS
from tests.edge.recording_helpers import decoded, plain_frames
from tests.inprocess import keycam


@pytest.mark.parametrize("spec_name", ["rgb8", "raw12", "gray8", "rgb12", "bayer12", "bayer12to8"])
def test_round_trip_is_lossless_and_the_official_reader_sees_every_frame(tmp_path, key, spec_name):
    spec = PRESETS[spec_name]
    transform = AdcTransform(key, spec)
    measurements = [transform(f, epoch=i // 4) for i, f in enumerate(plain_frames(10, spec))]
    path = tmp_path / "r.mcap"
    with Recorder(path, spec, key.fingerprint) as recorder:
        for i, m in enumerate(measurements):
            recorder.write(m, epoch=i // 4, sequence=i, timestamp_ns=1_000_000 * i, source_size=(64, 48))
    info = RecordingInfo()
    frames = list(read_recording(path, info=info))
    assert not info.truncated and info.fingerprint == key.fingerprint and info.spec == spec
    assert [f.sequence for f in frames] == list(range(10)) and [f.epoch for f in frames] == [i // 4 for i in range(10)]
    assert all(np.array_equal(f.image, m) and f.image.dtype == m.dtype for f, m in zip(frames, measurements))
    assert all(f.source_size == (64, 48) and f.fingerprint == key.fingerprint for f in frames)
    messages = decoded(path)  # the official reader, decoding with the schemas the file itself holds
    images = [d for _, c, _, d in messages if c.topic == MEASUREMENT_TOPIC]
    provenance = [d for _, c, _, d in messages if c.topic == FRAME_TOPIC]
    assert len(images) == len(provenance) == 10 and frame_count(path) == 10
    assert [p["epoch"] for p in provenance] == [i // 4 for i in range(10)]
    channel = next(c for _, c, _, _ in messages if c.topic == MEASUREMENT_TOPIC)
    assert channel.metadata["fingerprint"] == key.fingerprint and channel.message_encoding == "protobuf"
    with open(path, "rb") as handle:
        chunks = list(make_reader(handle).get_summary().chunk_indexes)
    assert {c.compression for c in chunks} == {"zstd"}


def test_plain_frames_only_with_the_debug_flag_and_in_a_private_file(tmp_path, key, caplog):
    frame = plain_frames(1)[0]
    measurement = AdcTransform(key)(frame)
    with Recorder(tmp_path / "a.mcap", DEFAULT_SPEC, key.fingerprint) as recorder:
        with pytest.raises(ImageFileError, match="explicit debug flag"):
            recorder.write(measurement, 0, 0, 0, plain=frame)
    with caplog.at_level("WARNING"):
        recorder = Recorder(tmp_path / "b.mcap", DEFAULT_SPEC, key.fingerprint, record_plain=True)
    assert "RECORDING PLAIN FRAMES" in caplog.text
    recorder.write(measurement, 0, 0, 0, plain=frame)
    recorder.close()
    assert np.array_equal(next(read_recording(tmp_path / "b.mcap", topic=PLAIN_TOPIC)).image, frame)
    assert stat.S_IMODE((tmp_path / "b.mcap").stat().st_mode) == 0o600  # plain pictures: mode 0600, like keys
    (tmp_path / "c.mcap").write_bytes(b"")
    (tmp_path / "c.mcap").chmod(0o644)
    Recorder(tmp_path / "c.mcap", DEFAULT_SPEC, key.fingerprint, record_plain=True, force=True).close()
    assert stat.S_IMODE((tmp_path / "c.mcap").stat().st_mode) == 0o600  # replaced with --force: made private


def test_recorder_refuses_to_overwrite_and_bad_names(tmp_path, key):
    (tmp_path / "x.mcap").write_bytes(b"")
    with pytest.raises(ImageFileError, match="already exists"):
        Recorder(tmp_path / "x.mcap", DEFAULT_SPEC, key.fingerprint)
    with pytest.raises(ImageFileError, match="end in .mcap"):
        Recorder(tmp_path / "x.bag", DEFAULT_SPEC, key.fingerprint)
    with pytest.raises(ImageFileError, match="does not exist"):
        list(read_recording(tmp_path / "absent.mcap"))


WRITER = """
import sys, time, numpy as np
from edge.recording import Recorder
from firmware_sim.spec import DEFAULT_SPEC
recorder = Recorder(sys.argv[1], DEFAULT_SPEC, sys.argv[2] if len(sys.argv) > 2 else "kc1:0000000000000000",
                    chunk_size=16 * 1024)
rng = np.random.default_rng(1)
i = 0
while True:
    recorder.write(rng.integers(0, 256, (24, 32, 3)).astype(np.uint8), 0, i, i * 1000)
    i += 1
    if i == 40:
        print("ready", flush=True)
    time.sleep(0.001)
"""


def test_a_recording_killed_mid_write_replays_its_complete_chunks(tmp_path):
    path = tmp_path / "killed.mcap"
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                               cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert process.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    info = RecordingInfo()
    frames = list(read_recording(path, info=info))
    assert info.truncated and "ends early" in info.describe(path)  # said in the run's summary
    assert len(frames) >= 40 - 8  # at most the chunk in flight (16 KiB, about 7 frames) is lost
    assert [f.sequence for f in frames] == list(range(len(frames)))  # complete, in order, no gaps


SEALED_WRITER = """
import sys, time, types, numpy as np
from edge.recording import Recorder
from edge.seal import Sealer
from firmware_sim.keys import MasterKey
from firmware_sim.spec import PRESETS
key, spec = MasterKey.load(sys.argv[2]), PRESETS["rgb8-sealed"]
recorder, sealer = Recorder(sys.argv[1], spec, key.fingerprint, chunk_size=16 * 1024), Sealer(key, spec)
rng = np.random.default_rng(1)
i = 0
while True:
    frame = types.SimpleNamespace(sequence=i, timestamp_ns=i * 1000)
    codes, seal = sealer.seal(rng.integers(0, 256, (128, 128, 3)).astype(np.uint8), frame, 0)
    recorder.write(codes, 0, i, i * 1000, seal=seal.to_hex())
    i += 1
    if i == 40:
        print("ready", flush=True)
    time.sleep(0.001)
"""


def test_keycam_replay_of_a_killed_recording_warns_and_replays_its_complete_chunks(tmp_path):
    """The same crash as above, replayed through the command line with the default model (the face detector,
    RGB 128 x 128, its readout sealed: the writer seals as the default job's readout does)."""
    writer = SEALED_WRITER
    path = tmp_path / "killed.mcap"
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    assert keycam("run", "--max-frames", "1", cwd=tmp_path).returncode == 0  # in this process (tests/inprocess.py)
    from firmware_sim.keys import MasterKey

    from edge.places import default_folder

    key_path = default_folder() / "default.key"  # the default job's key
    assert MasterKey.load(key_path).fingerprint
    process = subprocess.Popen([sys.executable, "-c", writer, str(path), str(key_path)], stdout=subprocess.PIPE,
                               text=True, cwd=root)
    assert process.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    recovered = len(list(read_recording(path)))
    done = keycam("replay", str(path), "--output", str(tmp_path / "r.jsonl"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ends early" in done.stderr
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == recovered >= 32


def _recording(path, key, count=40, chunk_size=4096):
    """A recording of ``count`` 24x32 RGB measurements in small chunks (several frames each)."""
    transform = AdcTransform(key, DEFAULT_SPEC)
    with Recorder(path, DEFAULT_SPEC, key.fingerprint, chunk_size=chunk_size) as recorder:
        for i, frame in enumerate(plain_frames(count)):
            recorder.write(transform(frame), epoch=0, sequence=i, timestamp_ns=1_000_000 * i)


def _flip(path, offsets):
    data = bytearray(path.read_bytes())
    for offset in offsets:
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_chunk_is_skipped_and_counted_never_replayed(tmp_path, key):
    path = tmp_path / "r.mcap"
    _recording(path, key)
    intact = list(read_recording(path))
    size = path.stat().st_size
    _flip(path, range(size // 3, size // 3 + 200, 7))  # damage inside the data, away from the summary
    info = RecordingInfo()
    frames = list(read_recording(path, info=info))
    assert info.damaged_chunks >= 1 and info.damaged_frames >= 1
    assert len(frames) + info.damaged_frames == len(intact) == info.expected
    good = {f.sequence: f.image for f in intact}
    assert all(np.array_equal(f.image, good[f.sequence]) for f in frames)  # nothing damaged comes through
    assert "damaged chunk" in info.describe(path) and f"{len(frames)} frames read" in info.describe(path)


def test_keycam_replay_of_a_damaged_recording_exits_1_unless_told_to_skip(tmp_path, key):
    from edge.default import default_model

    path = tmp_path / "r.mcap"
    key.save(tmp_path / "k.key")
    transform = AdcTransform(key, PRESETS["gray8"])
    with Recorder(path, PRESETS["gray8"], key.fingerprint, chunk_size=2048) as recorder:
        for i, frame in enumerate(plain_frames(30, PRESETS["gray8"], (28, 28))):
            recorder.write(transform(frame), epoch=0, sequence=i, timestamp_ns=1_000_000 * i)
    _flip(path, range(path.stat().st_size // 2, path.stat().st_size // 2 + 64, 5))
    model = default_model(tmp_path, key)
    args = ["replay", str(path), "--model", str(model), "--key", str(tmp_path / "k.key"),
            "--output", str(tmp_path / "out.jsonl")]
    refused = keycam(*args, timeout=120)
    assert refused.returncode == 1 and "damaged chunk" in refused.stderr and "--skip-damage" in refused.stderr
    assert "Traceback" not in refused.stderr
    replayed = len((tmp_path / "out.jsonl").read_text().splitlines())
    assert 0 < replayed < 30  # the undamaged frames were still replayed
    accepted = keycam(*args, "--skip-damage", timeout=120)
    assert accepted.returncode == 0 and "damaged chunk" in accepted.stderr


def test_a_file_that_is_not_mcap_is_refused(tmp_path):
    path = tmp_path / "noise.mcap"
    path.write_bytes(np.random.default_rng(1).bytes(5000))
    with pytest.raises(ImageFileError, match="is not an MCAP recording"):
        list(read_recording(path))


@pytest.mark.parametrize("odd", ["size", "channels"])
def test_frames_of_another_shape_are_skipped_and_counted_and_the_rest_replay(tmp_path, key, odd):
    """A recording whose frames change shape or channel count mid-way (a camera reconfigured) replays every frame
    the model reads; each other frame is that frame's error (counted, one line), never the end of the replay nor
    taken for damage (each frame is decoded with its own channel count)."""
    from edge.default import default_model

    path = tmp_path / "r.mcap"
    key.save(tmp_path / "k.key")
    transform = AdcTransform(key, PRESETS["gray8"])
    frames = list(plain_frames(8, PRESETS["gray8"], (28, 28)))
    with Recorder(path, PRESETS["gray8"], key.fingerprint, chunk_size=2048) as recorder:
        for i, frame in enumerate(frames):
            measurement = transform(frame)
            if i in (3, 4):
                measurement = measurement[:14, :14] if odd == "size" else np.repeat(measurement, 3, axis=2)
            recorder.write(np.ascontiguousarray(measurement), epoch=0, sequence=i, timestamp_ns=1_000_000 * i)
    model = default_model(tmp_path, key)
    done = keycam("replay", str(path), "--model", str(model), "--key", str(tmp_path / "k.key"),
                  "--output", str(tmp_path / "out.jsonl"), timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    answered = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines() if line]
    assert [a["sequence"] for a in answered] == [0, 1, 2, 5, 6, 7], done.stderr  # every frame the model reads
    assert done.returncode == 0 and "2 errors" in done.stderr and "damaged" not in done.stderr, done.stderr


def test_a_recording_is_private_and_never_written_through_a_link(tmp_path, key):
    """Mode 0600 under umask 022 (measurements and the keyed model give the picture back), and a link at the path,
    dangling or not, is refused with or without --force: its target is never created, replaced or changed."""
    from edge.outputs import open_output

    old = os.umask(0o022)
    try:
        Recorder(tmp_path / "a.mcap", DEFAULT_SPEC, key.fingerprint).close()
        (tmp_path / "target.mcap").write_bytes(b"keep")
        (tmp_path / "link.mcap").symlink_to(tmp_path / "target.mcap")
        (tmp_path / "dangling.mcap").symlink_to(tmp_path / "made.mcap")
        for name, force in (("link.mcap", True), ("link.mcap", False), ("dangling.mcap", False),
                            ("dangling.mcap", True)):
            with pytest.raises(ImageFileError):
                Recorder(tmp_path / name, DEFAULT_SPEC, key.fingerprint, force=force)
        for append in (True, False):  # the results' and events' writer alike
            with pytest.raises(Exception, match="symbolic link"):
                open_output(tmp_path / "link.mcap", append=append)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.mcap").stat().st_mode) == 0o600
    assert (tmp_path / "target.mcap").read_bytes() == b"keep" and not (tmp_path / "made.mcap").exists()
