"""The spool and the forwarding sink against what a disk, another process or a changed server can do (issue 26,
items 5, 8, 11 and 13), with real servers on 127.0.0.1:

- entries whose digest holds but whose metadata has the wrong types are quarantined, and delivery goes on;
- FIFOs, devices, links and folders named like entries are never opened or followed, whether there at start or
  put there later; a sender stuck in a request that never ends does not hold the device at close;
- a second process on the same spool is refused in one line naming the first; nothing is lost;
- a same-key server whose model was recompiled for another key epoch or readout spec gets nothing: every frame
  stays in the spool and the alarm is raised until the model is back.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge.errors import SpoolError
from edge.frame import Frame, Result
from edge.sinks.forward import ForwardSink
from edge.sinks.results import ResultsSink
from edge.wire.client import V2Client, connect
from edge.wire.spool import Spool
from tests.edge.servers import ROOT, ThreadServer, free_port


def _frame_result(sequence: int, key) -> Result:
    image = np.full((28, 28, 1), (37 * sequence) % 256, np.uint8)
    return Result(Frame(image, sequence, 1000 * sequence, f"f{sequence}", measured=True, epoch=0,
                        fingerprint=key.fingerprint))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait(condition, seconds=60.0):
    deadline = time.monotonic() + seconds  # hang protection only
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _spooled(served, key, tmp_path: Path, count: int):
    """``count`` frames spooled by a run whose server was down; the server's model description."""
    remote = connect(V2Client(served.url), "fmnist", "", key.fingerprint, tmp_path / "spool")
    down = ForwardSink(V2Client(f"http://127.0.0.1:{free_port()}", timeout_s=0.5), remote,
                       ResultsSink(tmp_path / "first.jsonl"), Spool(tmp_path / "spool"), retry_min_s=0.05,
                       drain_s=0.1)
    for sequence in range(count):
        down.write(_frame_result(sequence, key))
    down.close()
    assert len(list((tmp_path / "spool").glob("*.kcs"))) == count
    return remote


def _deliver(served, remote, tmp_path: Path) -> ForwardSink:
    sink = ForwardSink(V2Client(served.url), remote, ResultsSink(tmp_path / "second.jsonl"), Spool(tmp_path / "spool"),
                       retry_min_s=0.05, drain_s=60)
    sink.close()
    return sink


def test_entries_with_wrong_typed_metadata_are_quarantined_and_delivery_goes_on(repository, served, tmp_path, caplog):
    folder, key = repository
    remote = _spooled(served, key, tmp_path, 6)
    spool = Spool(tmp_path / "spool")
    wrong = {0: {"source_size": "ab"}, 1: {"latency_ms": [1, 2]}, 2: {"sequence": "3"}, 3: {"header_length": 10**9}}
    for counter, change in wrong.items():  # rewritten whole: the digest holds, the fields do not
        meta, body = spool.read(counter)
        spool.put(counter, {**meta, **change}, body)
    spool.close()
    for _ in range(2):  # a restart meets the same entries: never a crash, never a loop
        sink = _deliver(served, remote, tmp_path)
    results = _lines(tmp_path / "second.jsonl")
    assert [r["sequence"] for r in results] == [4, 5] and not any("error" in r for r in results)
    assert sorted(p.name for p in (tmp_path / "spool" / "quarantine").iterdir()) == [
        f"{c:020d}.kcs" for c in range(4)]
    assert sink.stats.quarantined == 0 and "Traceback" not in caplog.text  # the second run found nothing left
    messages = [r.getMessage() for r in caplog.records if "quarantine" in r.getMessage()]
    assert len(messages) == 4 and all("\n" not in m for m in messages)
    assert "'source_size' is \"ab\"" in messages[0] and "'latency_ms' is [1, 2]" in messages[1]


def test_special_files_named_like_entries_are_never_opened_or_followed(repository, served, tmp_path, caplog):
    folder, key = repository
    remote = _spooled(served, key, tmp_path, 4)
    spool_folder = tmp_path / "spool"
    entry = spool_folder / f"{0:020d}.kcs"
    (spool_folder / f"{4:020d}.kcs").symlink_to("/dev/zero")  # would run the device out of memory
    os.mkfifo(spool_folder / f"{5:020d}.kcs")  # would hang it
    (spool_folder / f"{6:020d}.kcs").symlink_to(entry)  # a link to a real entry: still never followed
    (spool_folder / f"{7:020d}.kcs").mkdir()
    sink = ForwardSink(V2Client(served.url), remote, ResultsSink(tmp_path / "second.jsonl"), Spool(spool_folder),
                       retry_min_s=0.05, drain_s=60)
    first = spool_folder / f"{1:020d}.kcs"  # an entry that becomes a FIFO after the spool was opened
    first.unlink()
    os.mkfifo(first)
    sink.close()
    results = _lines(tmp_path / "second.jsonl")
    assert [r["sequence"] for r in results] == [0, 2, 3]
    quarantined = sorted(p.name for p in (spool_folder / "quarantine").iterdir())
    assert quarantined == [f"{c:020d}.kcs" for c in (1, 4, 5, 6, 7)]
    assert sink.stats.quarantined == 1  # the one found when it was read; the others at start
    assert os.readlink(spool_folder / "quarantine" / f"{4:020d}.kcs") == "/dev/zero"  # moved, never opened
    said = [r.getMessage() for r in caplog.records if "quarantine" in r.getMessage()]
    assert len(said) == 5 and all("\n" not in m for m in said) and any("it is a FIFO" in m for m in said)


def test_a_request_that_is_never_answered_does_not_hold_the_device_at_close(repository, served, tmp_path):
    folder, key = repository
    remote = connect(V2Client(served.url), "fmnist", "", key.fingerprint, tmp_path / "spool")
    with socket.socket() as hole:  # accepts connections (the kernel does) and never answers
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)
        sink = ForwardSink(V2Client(f"http://127.0.0.1:{hole.getsockname()[1]}", timeout_s=600), remote,
                           ResultsSink(tmp_path / "out.jsonl"), Spool(tmp_path / "spool"), drain_s=3600)
        for sequence in range(3):
            sink.write(_frame_result(sequence, key))
        sink.interrupt()  # SIGTERM
        closing = threading.Thread(target=sink.close, daemon=True)
        closing.start()
        closing.join(timeout=120)  # hang protection: close itself waits about a second and a half
        assert not closing.is_alive(), "close waited for a request that never ends"
    assert len(list((tmp_path / "spool").glob("*.kcs"))) == 3  # every frame kept for the next run
    assert _lines(tmp_path / "out.jsonl") == []


def test_a_second_process_on_the_same_spool_is_refused_in_one_line(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys\nfrom edge.wire.spool import Spool\n"
                               f"spool = Spool({str(tmp_path / 'spool')!r})\nspool.put(0, {{}}, b'x')\n"
                               "print('ready', flush=True)\nsys.stdin.read()\n"],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "ready\n"
        with pytest.raises(SpoolError) as refused:
            Spool(tmp_path / "spool")
        message = str(refused.value)
        assert f"is in use by another keycam process (pid {holder.pid})" in message and "\n" not in message
        assert "forward.spool" in message  # the fix
        assert [p.name for p in (tmp_path / "spool").glob("*.kcs")] == [f"{0:020d}.kcs"]  # nothing touched
    finally:
        holder.communicate("", timeout=60)
    spool = Spool(tmp_path / "spool")  # free again once the first has gone; it counts on from the first's entries
    assert spool.next == 1 and len(spool) == 1
    spool.put(spool.next, {}, b"y")
    spool.close()
    assert len(list((tmp_path / "spool").glob("*.kcs"))) == 2


def test_a_second_keycam_run_on_a_spool_in_use_ends_in_one_line(repository, served, tmp_path):
    from tests.inprocess import keycam

    folder, key = repository
    spool = Spool(tmp_path / "spool")  # a run already using it (the lock is per open file, this process included)
    config = tmp_path / "keycam.toml"
    config.write_text(f'[source]\nkind = "fashion-mnist"\n[model]\nkey = "{folder / "device.key"}"\n'
                      f'[results]\npath = "{tmp_path / "out.jsonl"}"\n'
                      f'[forward]\nurl = "{served.url}"\nmodel = "fmnist"\nspool = "{tmp_path / "spool"}"\n')
    try:
        done = keycam("run", "--config", str(config), timeout=120)
    finally:
        spool.close()
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "is in use by another keycam process" in done.stderr
    assert not (tmp_path / "out.jsonl").exists() or _lines(tmp_path / "out.jsonl") == []


@pytest.fixture(scope="module")
def recompiled(repository):
    """The same model under the same key, recompiled for key epoch 1, and for the raw12 readout (UINT16 codes,
    the same shape): servers set up for the same camera that cannot read what the device sends."""
    from edge.default import ASSET, MEAN, SPEC, STD
    from edge.server.repository import ServedModel
    from export.keyify import KeyifyOptions, keyify
    from export.package.save import save
    from firmware_sim.spec import PRESETS

    folder, key = repository
    models = {}
    for name, options in (("epoch", KeyifyOptions(spec=SPEC, mean=MEAN, std=STD, epoch=1)),
                          ("datatype", KeyifyOptions(spec=PRESETS["raw12"], mean=MEAN, std=STD))):
        path = folder / f"recompiled-{name}.onnx"
        if not path.exists():
            save(keyify(ASSET, key, options), path)
        models[name] = ServedModel("fmnist", "1", path)
    return models


@pytest.mark.parametrize("change, words", [("epoch", "key epoch 1"), ("datatype", "readout spec")])
def test_a_same_key_server_whose_model_changed_keeps_the_spool_and_raises_the_alarm(repository, recompiled, tmp_path,
                                                                                   change, words):
    folder, key = repository
    with ThreadServer(folder / "repo", max_batch=1) as server:
        versions = server.app.state.repository.models["fmnist"]
        original = versions["1"]
        remote = connect(V2Client(server.url), "fmnist", "", key.fingerprint, tmp_path / "spool")
        sink = ForwardSink(V2Client(server.url), remote, ResultsSink(tmp_path / "out.jsonl"), Spool(tmp_path / "spool"),
                           retry_min_s=0.02, retry_max_s=0.1, drain_s=60)
        sink.write(_frame_result(0, key))
        _wait(lambda: sink.stats.answered == 1)
        versions["1"] = recompiled[change]  # the server's model recompiled, the same name, the same key
        for sequence in range(1, 6):
            sink.write(_frame_result(sequence, key))
        _wait(lambda: words in sink.alarm and sink.pending == 5)
        assert sink.stats.rejected == 0 and sink.stats.dropped == 0 and len(_lines(tmp_path / "out.jsonl")) == 1
        versions["1"] = original  # put back: everything waiting is delivered, in order, once
        _wait(lambda: sink.stats.answered == 6)
        sink.close()
    results = _lines(tmp_path / "out.jsonl")
    assert [r["sequence"] for r in results] == list(range(6)) and not any("error" in r for r in results)
    assert sink.alarm == ""
