"""A user name and password in `forward.url` never reach a summary, a warning or an error: `***` stands for them
(issue 26, item 4), whether the server answers, is down at the first start, or goes away during the run."""

from __future__ import annotations

import logging

import numpy as np

from edge.frame import Frame, Result
from edge.sinks.forward import ForwardSink
from edge.sinks.results import ResultsSink
from edge.wire.client import V2Client, connect
from edge.wire.spool import Spool
from tests.edge.servers import free_port
from tests.inprocess import keycam

SECRET = "pa55-w0rd"  # a made-up password for these tests only: no real credential, no key material


def _config(tmp_path, folder, url: str):
    config = tmp_path / "keycam.toml"
    config.write_text(f'[source]\nkind = "fashion-mnist"\n[model]\nkey = "{folder / "device.key"}"\n'
                      f'[results]\npath = "{tmp_path / "out.jsonl"}"\n'
                      f'[forward]\nurl = "{url}"\nmodel = "fmnist"\nspool = "{tmp_path / "spool"}"\nconnect_s = 0\n')
    return config


def test_the_password_in_forward_url_is_never_printed(repository, served, tmp_path):
    folder, _ = repository
    address = served.url.removeprefix("http://")
    done = keycam("run", "--config", _config(tmp_path, folder, f"http://camera:{SECRET}@{address}"), timeout=120)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stderr + done.stdout and "camera" not in done.stderr
    assert f"forwarded to http://***@{address}: 20 answered" in done.stderr
    down = f"http://camera:{SECRET}@127.0.0.1:{free_port()}"
    (tmp_path / "down").mkdir()
    failed = keycam("run", "--config", _config(tmp_path / "down", folder, down), timeout=120)
    assert failed.returncode == 1 and SECRET not in failed.stderr and "***@127.0.0.1" in failed.stderr, failed.stderr


def test_the_password_never_reaches_the_log_when_the_server_goes_away(repository, served, tmp_path, caplog):
    folder, key = repository
    caplog.set_level(logging.INFO)
    remote = connect(V2Client(served.url), "fmnist", "", key.fingerprint, tmp_path / "spool")
    url = f"http://camera:{SECRET}@127.0.0.1:{free_port()}"
    sink = ForwardSink(V2Client(url, timeout_s=0.5), remote, ResultsSink(tmp_path / "out.jsonl"),
                       Spool(tmp_path / "spool"), retry_min_s=0.05, drain_s=0.2)
    for sequence in range(3):
        sink.write(Result(Frame(np.zeros((28, 28, 1), np.uint8), sequence, sequence, "t", measured=True, epoch=0,
                                fingerprint=key.fingerprint)))
    sink.close()
    assert caplog.records and SECRET not in caplog.text and "camera" not in caplog.text
    assert SECRET not in sink.summary() and "***@127.0.0.1" in sink.summary()
