"""Forwarding under faults, against real servers on 127.0.0.1: a server swapped for one keyed for another key,
damaged spool entries, a damaged server cache, a restart while the server is down. Every frame is accounted
for: answered, waiting in the spool, quarantined, or refused by a server that is still the right one."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ServerUnavailable
from edge.frame import Frame, Result
from edge.sinks.forward import ForwardSink
from edge.sinks.results import ResultsSink
from edge.wire.client import SERVER_CACHE, V2Client, connect
from edge.wire.spool import Spool
from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from export.package.triton import export_triton
from tests.edge.servers import ProcessServer, ThreadServer, free_port


@pytest.fixture(scope="module")
def other_repository(tmp_path_factory):
    """The same model name, `fmnist`, keyed for another key: a server set up for some other camera."""
    from edge.default import ASSET, MEAN, SPEC, STD
    from firmware_sim.keys import MasterKey

    folder = tmp_path_factory.mktemp("other")
    save(keyify(ASSET, MasterKey.generate(), KeyifyOptions(spec=SPEC, mean=MEAN, std=STD)), folder / "keyed.onnx")
    export_triton(folder / "keyed.onnx", folder / "repo", "fmnist")
    return folder / "repo"


def _frame_result(sequence: int, key, value: int | None = None) -> Result:
    image = np.full((28, 28, 1), sequence % 256 if value is None else value, np.uint8)
    return Result(Frame(image, sequence, 1000 * sequence, f"f{sequence}", measured=True, epoch=0,
                        fingerprint=key.fingerprint))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait(condition, seconds=60.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_server_swapped_for_a_wrong_key_one_keeps_every_frame_and_raises_the_alarm(repository, other_repository,
                                                                                      tmp_path):
    folder, key = repository
    port = free_port()
    right, wrong = ProcessServer(folder / "repo", port), ProcessServer(other_repository, port)
    right.start()
    try:
        remote = connect(V2Client(right.url), "fmnist", "", key.fingerprint, tmp_path / "spool")
        sink = ForwardSink(V2Client(right.url, timeout_s=2), remote, ResultsSink(tmp_path / "out.jsonl"),
                           Spool(tmp_path / "spool"), retry_min_s=0.05, retry_max_s=0.3, drain_s=60)
        done = threading.Event()

        def stream():
            for sequence in range(60):
                sink.write(_frame_result(sequence, key))
                time.sleep(0.01)
            done.set()

        threading.Thread(target=stream, daemon=True).start()
        _wait(lambda: sink.stats.answered >= 10)
        right.kill()
        wrong.start()  # the same address, a server keyed for someone else
        _wait(lambda: sink.alarm != "" and done.is_set())
        assert "is now keyed for" in sink.alarm and key.fingerprint in sink.alarm
        assert sink.stats.rejected == 0 and sink.stats.dropped == 0 and sink.stats.misconfigured >= 1
        assert sink.stats.answered + sink.pending == 60  # every frame answered or waiting, none burnt
        wrong.stop()
        right.start()
        _wait(lambda: sink.stats.answered == 60)
        sink.close()
    finally:
        right.stop()
        wrong.stop()
    results = _lines(tmp_path / "out.jsonl")
    assert [r["sequence"] for r in results] == list(range(60)) and not any("error" in r for r in results)
    assert sink.alarm == "" and "MISCONFIGURED" not in sink.summary()


def test_damaged_spool_entries_are_quarantined_and_delivery_goes_on(repository, served, tmp_path):
    folder, key = repository
    remote = connect(V2Client(served.url), "fmnist", "", key.fingerprint, tmp_path / "spool")
    spool = Spool(tmp_path / "spool")
    down = ForwardSink(V2Client(f"http://127.0.0.1:{free_port()}", timeout_s=0.5), remote,
                       ResultsSink(tmp_path / "first.jsonl"), spool, retry_min_s=0.05, drain_s=0.2)
    for sequence in range(6):  # a server nobody listens on: all six go to the spool
        down.write(_frame_result(sequence, key))
    down.close()
    entries = sorted((tmp_path / "spool").glob("*.kcs"))
    assert len(entries) == 6
    entries[0].write_bytes(entries[0].read_bytes()[:12])  # a 12-byte entry (a crash of the disk, not of keycam)
    flipped = bytearray(entries[1].read_bytes())
    flipped[-10] ^= 0x40  # one bit of the measurement
    entries[1].write_bytes(bytes(flipped))
    entries[2].write_bytes(b"KCS2" + entries[2].read_bytes()[4:40] + b'{"id": 1}')  # metadata without its fields
    sink = ForwardSink(V2Client(served.url), remote, ResultsSink(tmp_path / "second.jsonl"), Spool(tmp_path / "spool"),
                       retry_min_s=0.05, drain_s=30)
    sink.close()
    results = _lines(tmp_path / "second.jsonl")
    assert [r["sequence"] for r in results] == [3, 4, 5]  # the damaged ones are never sent
    assert sink.stats.quarantined == 3 and sink.stats.answered == 3
    assert sorted(p.name for p in (tmp_path / "spool" / "quarantine").iterdir()) == [e.name for e in entries[:3]]
    assert not list((tmp_path / "spool").glob("*.kcs"))


def test_a_restart_while_the_server_is_down_starts_at_once_from_the_cache(repository, served, tmp_path):
    folder, key = repository
    remote = connect(V2Client(served.url), "fmnist", "", key.fingerprint, tmp_path / "spool")
    down = V2Client(f"http://127.0.0.1:{free_port()}", timeout_s=0.5)
    asked = []
    model = down.model

    def counted(*args, **kwargs):
        asked.append(args)
        return model(*args, **kwargs)

    down.model = counted
    offline = connect(down, "fmnist", "", key.fingerprint, tmp_path / "spool", wait_s=30)
    assert offline == remote and len(asked) == 1  # asked once, then the cache: not retried for the whole wait_s


def test_a_damaged_server_cache_is_ignored_with_one_error(repository, tmp_path):
    folder, key = repository
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / SERVER_CACHE).write_bytes(b'{"name": "fmnist", "manifest": \xff')
    with pytest.raises(ServerUnavailable, match="the first start needs the server"):
        connect(V2Client(f"http://127.0.0.1:{free_port()}", timeout_s=0.2), "fmnist", "", key.fingerprint,
                tmp_path / "spool", wait_s=0.3)


def test_a_server_that_refuses_frames_but_is_still_right_gets_them_recorded_as_refused(repository, tmp_path):
    folder, key = repository
    with ThreadServer(folder / "repo") as server:
        remote = connect(V2Client(server.url), "fmnist", "", key.fingerprint, tmp_path / "spool")
        sink = ForwardSink(V2Client(server.url), remote, ResultsSink(tmp_path / "out.jsonl"), Spool(tmp_path / "s"))
        sink.write(_frame_result(0, key))
        bad = _frame_result(1, key)
        sink.write(Result(bad.frame.replace(image=np.zeros((27, 28, 1), np.uint8))))  # the wrong shape
        sink.close()
    results = _lines(tmp_path / "out.jsonl")
    assert "error" not in results[0] and "has shape" in results[1]["error"]
    assert sink.stats.rejected == 1 and sink.alarm == ""


def test_sigterm_while_capture_waits_for_a_full_spool_persists_everything_and_exits_143(repository, tmp_path):
    import signal
    import subprocess
    import sys

    folder, key = repository
    with ThreadServer(folder / "repo") as server:  # the first start needs the server once, to cache its model
        connect(V2Client(server.url), "fmnist", "", key.fingerprint, tmp_path / "spool")
        url = server.url
    config = tmp_path / "keycam.toml"
    config.write_text(f'[source]\nkind = "fashion-mnist"\n[model]\nkey = "{folder / "device.key"}"\n'
                      f'[results]\npath = "{tmp_path / "out.jsonl"}"\n'
                      f'[forward]\nurl = "{url}"\nmodel = "fmnist"\nspool = "{tmp_path / "spool"}"\n'
                      f'spool_max_frames = 3\nwhen_full = "stop_capture"\nretry_min_s = 0.05\nretry_max_s = 0.2\n'
                      f'drain_s = 3600\n')  # waiting out the drain would be a hang: the signal must end the run
    keycam = str(Path(sys.executable).with_name("keycam"))
    process = subprocess.Popen([keycam, "run", "--config", str(config)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: len(list((tmp_path / "spool").glob("*.kcs"))) >= 3, 60)
        time.sleep(0.5)  # capture is now waiting for room that will not come
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)  # hang protection: not the drain time (an hour), not for ever
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr and "stopped by SIGTERM" in stderr
    spooled = len(list((tmp_path / "spool").glob("*.kcs")))
    frames = int(stderr.split("keycam: ")[1].split(" frames")[0])
    assert spooled == frames >= 3  # every frame the loop took is in the spool: none lost, none sent
