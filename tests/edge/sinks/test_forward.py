"""The forwarding sink against real servers on 127.0.0.1: results equal the device's own, the server is
killed and restarted mid-stream and every frame is answered exactly once and in order, the spool
survives restarts, a full spool follows its policy, and a server keyed for someone else is refused."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge.config import Config, ConfigError
from edge.errors import KeycamError, KeyMismatch
from edge.job import build_job
from edge.loop import CaptureLoop
from edge.frame import Frame, Result
from edge.pipeline import Pipeline
from edge.runtime import KeyedModel
from edge.sensor import Readout
from edge.sinks.forward import ForwardSink
from edge.sinks.results import ResultsSink
from edge.sources.base import Source
from edge.sources.fashion import FashionMnistConfig
from edge.sources.virtual import VirtualSensor
from edge.wire.client import V2Client, connect
from edge.wire.spool import Spool
from tests.edge.servers import ProcessServer, ThreadServer, free_port


def _result(sequence, timestamp_ns, origin, fingerprint, epoch, measurement) -> Result:
    return Result(Frame(measurement, sequence, timestamp_ns, origin, measured=True, epoch=epoch,
                        fingerprint=fingerprint))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _config(folder: Path, results: Path, **forward) -> Config:
    config = Config()
    config.source = FashionMnistConfig()  # the 20 Fashion-MNIST frames that ship in foolbox, read out virtually
    config.model.key = str(folder / "device.key")
    config.results.path = str(results)
    for name, value in forward.items():
        setattr(config.forward, name, value)
    return config


def _run(config: Config, replay: bool = True):
    job = build_job(config, replay=replay)
    metrics = CaptureLoop(job.source, job.pipeline, job.sinks).run()
    return job, metrics


def test_forwarded_measurements_give_the_devices_own_results_byte_for_byte(repository, served, tmp_path):
    folder, key = repository
    local = _config(folder, tmp_path / "local.jsonl")
    local.model.path = str(folder / "keyed.onnx")
    _run(local)
    forwarded = _config(folder, tmp_path / "forwarded.jsonl", url=served.url, model="fmnist",
                        spool=str(tmp_path / "spool"))
    job, metrics = _run(forwarded)
    assert metrics.frames == 20
    assert (tmp_path / "forwarded.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert job.sinks[0].stats.answered == 20 and job.sinks[0].stats.spooled == 0
    assert not list((tmp_path / "spool").glob("*.kcs"))


def test_split_features_go_to_the_task_model_on_the_server(repository, served, tmp_path):
    folder, key = repository
    local = _config(folder, tmp_path / "local.jsonl")
    local.model.path = str(folder / "keyed.onnx")
    _run(local)
    split = _config(folder, tmp_path / "split.jsonl", url=served.url, model="fmnist_task",
                    spool=str(tmp_path / "spool"))
    split.model.path = str(folder / "split.feature.onnx")
    _run(split)
    mine, theirs = _lines(tmp_path / "local.jsonl"), _lines(tmp_path / "split.jsonl")
    assert [r["outputs"]["logits"]["label"] for r in theirs] == [r["outputs"]["logits"]["label"] for r in mine]
    for a, b in zip(mine, theirs):
        assert abs(a["outputs"]["logits"]["score"] - b["outputs"]["logits"]["score"]) < 1e-4


def test_a_server_keyed_for_someone_else_is_refused(repository, served, tmp_path, other_key):
    folder, _ = repository
    other_key.save(tmp_path / "other.key")
    config = _config(folder, tmp_path / "out.jsonl", url=served.url, model="fmnist", spool=str(tmp_path / "spool"))
    config.model.key = str(tmp_path / "other.key")
    with pytest.raises(KeyMismatch, match="is keyed for .*this device's key is"):
        build_job(config)
    config = _config(folder, tmp_path / "out.jsonl", url=served.url, model="fmnist_task",
                     spool=str(tmp_path / "spool"))
    with pytest.raises(ConfigError, match="is a task model; forwarding measurements needs a full keyed model"):
        build_job(config)
    config.forward.model, config.readout.rotate_frames = "fmnist", 5
    with pytest.raises(ConfigError, match="rotate keys with a split model"):
        build_job(config)


class _Frames(Source):
    """``count`` Fashion-MNIST-sized frames, one every ``period_s`` (a device streaming)."""

    channel_order = "rgb"

    def __init__(self, count: int, seed: int, period_s: float = 0.0) -> None:
        super().__init__()
        self.count, self.period_s = count, period_s
        self.images = np.random.default_rng(seed).integers(0, 256, (count, 28, 28, 1), dtype=np.uint8)
        self._n = 0

    def _open(self) -> None:
        self._n = 0

    def _read(self):
        if self._n >= self.count:
            return None
        if self.period_s:
            time.sleep(self.period_s)
        self._n += 1
        return self._frame(self.images[self._n - 1], self._n * 1000, f"device-frame-{self._n - 1}")


def _device(remote, key, url, spool: Path, results: Path, count: int, seed: int, period_s: float, **options):
    source = _Frames(count, seed, period_s)
    sink = ForwardSink(V2Client(url, timeout_s=2.0), remote, ResultsSink(results, include_latency=False),
                       Spool(spool), retry_min_s=0.05, retry_max_s=0.4, drain_s=60, **options)
    sensor = VirtualSensor(source, Readout.for_model(remote.manifest, key, source_order="rgb"))
    pipeline = Pipeline(None, key, forward=True, manifest=remote.manifest)
    return source, sink, CaptureLoop(sensor, pipeline, [sink])


def _expected_labels(folder: Path, key, source: _Frames, remote) -> list[int]:
    """What the server's model answers for these frames, computed here: measurement -> keyed model."""
    from edge.transform import AdcTransform

    transform = AdcTransform(key, remote.manifest.spec)
    measurements = np.stack([transform(image, remote.manifest.epoch) for image in source.images])
    return KeyedModel(folder / "keyed.onnx", key).run(measurements)[0].argmax(axis=1).tolist()


def test_server_killed_and_restarted_mid_stream_every_frame_answered_once_in_order(repository, tmp_path):
    folder, key = repository
    server = ProcessServer(folder / "repo", free_port()).start()
    try:
        remote = connect(V2Client(server.url), "fmnist", "", key.fingerprint, tmp_path / "cache")
        devices = [_device(remote, key, server.url, tmp_path / f"spool{i}", tmp_path / f"results{i}.jsonl",
                           count=150, seed=i, period_s=0.01) for i in range(3)]
        threads = [threading.Thread(target=loop.run) for _, _, loop in devices]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while min(sink.stats.answered for _, sink, _ in devices) < 20:  # streaming, answered
            assert time.monotonic() < deadline
            time.sleep(0.02)
        server.kill()  # mid-stream, without warning
        deadline = time.monotonic() + 60  # hang protection: frames keep coming and each device meets the outage
        while not all(sink.stats.failures > 0 for _, sink, _ in devices):
            assert time.monotonic() < deadline and all(thread.is_alive() for thread in threads)
            time.sleep(0.02)
        server.start()  # the same port, a new process
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive()
    finally:
        server.stop()
    for index, (source, sink, _loop) in enumerate(devices):
        results = _lines(tmp_path / f"results{index}.jsonl")
        assert [r["sequence"] for r in results] == list(range(150))  # each frame exactly once, in order
        assert [r["outputs"]["logits"]["label"] for r in results] == _expected_labels(folder, key, source, remote)
        assert sink.stats.answered == 150 and sink.stats.spooled > 0 and sink.stats.dropped == 0
        assert not list((tmp_path / f"spool{index}").glob("*.kcs"))


def test_the_spool_outlives_the_device_and_goes_first_next_time(repository, tmp_path):
    folder, key = repository
    port = free_port()
    server = ProcessServer(folder / "repo", port)
    with server:
        remote = connect(V2Client(server.url), "fmnist", "", key.fingerprint, tmp_path / "spool")
    # the server is down for the whole first run: everything is spooled, nothing is lost
    source, sink, loop = _device(remote, key, server.url, tmp_path / "spool", tmp_path / "first.jsonl",
                                 count=12, seed=7, period_s=0)
    sink.drain_s = 0.5
    loop.run()
    assert (tmp_path / "first.jsonl").read_text() == "" and len(list((tmp_path / "spool").glob("*.kcs"))) == 12
    # the next run starts offline from the cached description, then the server comes back
    offline = connect(V2Client(server.url), "fmnist", "", key.fingerprint, tmp_path / "spool", wait_s=0.3)
    assert offline == remote
    with server:
        later, sink2, loop2 = _device(offline, key, server.url, tmp_path / "spool", tmp_path / "second.jsonl",
                                      count=5, seed=8, period_s=0)
        loop2.run()
    results = _lines(tmp_path / "second.jsonl")
    assert [r["origin"] for r in results] == [f"device-frame-{i}" for i in range(12)] + \
        [f"device-frame-{i}" for i in range(5)]  # the first run's frames first, then this run's
    labels = [r["outputs"]["logits"]["label"] for r in results]
    assert labels == _expected_labels(folder, key, source, remote) + _expected_labels(folder, key, later, remote)
    assert sink2.stats.answered == 17


@pytest.mark.parametrize("policy", ["drop_oldest", "stop_capture"])
def test_a_full_spool_follows_its_policy(repository, tmp_path, policy):
    folder, key = repository
    port = free_port()
    server = ProcessServer(folder / "repo", port)
    with server:
        remote = connect(V2Client(server.url), "fmnist", "", key.fingerprint, tmp_path / "cache")
    spool = Spool(tmp_path / "spool", max_entries=5)
    sink = ForwardSink(V2Client(server.url, timeout_s=1), remote, ResultsSink(tmp_path / "out.jsonl"), spool,
                       when_full=policy, retry_min_s=0.05, retry_max_s=0.1, drain_s=30)
    writer_done = threading.Event()

    def write_frames():
        for sequence in range(12):
            measurement = np.full((28, 28, 1), sequence, np.uint8)
            sink.write(_result(sequence, sequence, f"f{sequence}", key.fingerprint, 0, measurement))
        writer_done.set()

    writer = threading.Thread(target=write_frames)
    writer.start()
    # the server is down; waiting up to a minute is hang protection only
    if policy == "drop_oldest":
        assert writer_done.wait(timeout=60) and sink.stats.dropped >= 7  # never blocked: the oldest made room
        assert len(spool) <= 5
    else:
        deadline = time.monotonic() + 60
        while sink.stats.waited == 0:
            assert time.monotonic() < deadline and not writer_done.is_set()
            time.sleep(0.02)
        assert not writer_done.is_set() and sink.stats.dropped == 0  # capture stopped
    with server:  # the server returns: what waits is delivered in order
        writer.join(timeout=60)
        sink.close()
    sequences = [r["sequence"] for r in _lines(tmp_path / "out.jsonl")]
    if policy == "drop_oldest":
        assert sequences == sorted(sequences) and sequences[-5:] == list(range(7, 12))
        assert len(sequences) + sink.stats.dropped == 12
    else:
        assert sequences == list(range(12))


def test_refused_frames_are_recorded_with_the_servers_error_and_not_retried(repository, tmp_path):
    folder, key = repository
    with ThreadServer(folder / "repo") as server:
        remote = connect(V2Client(server.url), "fmnist", "", key.fingerprint, tmp_path / "spool")
        sink = ForwardSink(V2Client(server.url), remote, ResultsSink(tmp_path / "out.jsonl"), Spool(tmp_path / "s"))
        sink.write(_result(0, 0, "ok", key.fingerprint, 0, np.zeros((28, 28, 1), np.uint8)))
        sink.write(_result(1, 0, "bad", key.fingerprint, 0, np.zeros((27, 28, 1), np.uint8)))
        sink.write(_result(2, 0, "other epoch", key.fingerprint, 3, np.zeros((28, 28, 1), np.uint8)))
        sink.close()
    results = _lines(tmp_path / "out.jsonl")
    assert [r["sequence"] for r in results] == [0, 1, 2]
    assert "error" not in results[0] and "has shape [-1, 28, 28, 1]" in results[1]["error"]
    assert "it is from key epoch 3, and the model reads key epoch 0" in results[2]["error"]
    assert sink.stats.rejected == 2 and sink.stats.answered == 1 and sink.stats.failures == 0


def test_bearer_tokens_from_the_configuration(repository, tmp_path):
    folder, key = repository
    (tmp_path / "token").write_text("t0ken\n")
    (tmp_path / "token").chmod(0o600)
    with ThreadServer(folder / "repo", token="t0ken") as server:
        config = _config(folder, tmp_path / "out.jsonl", url=server.url, model="fmnist", spool=str(tmp_path / "s"),
                         token_file=str(tmp_path / "token"))
        job, metrics = _run(config)
        assert len(_lines(tmp_path / "out.jsonl")) == 20
        config.forward.token_file = ""
        with pytest.raises(KeycamError, match="HTTP 401: missing or wrong bearer token"):
            build_job(config)


def test_forward_configuration_is_strict(repository, tmp_path):
    from edge.config import load_config

    folder, _ = repository
    path = tmp_path / "keycam.toml"
    path.write_text('[forward]\nurl = "http://127.0.0.1:1"\nspool_size = 3\n')
    with pytest.raises(ConfigError, match="unknown key 'forward.spool_size' .*allowed here: url, model"):
        load_config(path)
    path.write_text('[forward]\nwhen_full = "explode"\n')
    with pytest.raises(ConfigError, match="forward.when_full = 'explode'"):
        load_config(path)
    config = _config(folder, tmp_path / "out.jsonl", url="http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="forward.model is not"):
        build_job(config)
    config = _config(folder, tmp_path / "out.jsonl", url="http://127.0.0.1:1", model="fmnist", connect_s=0.2,
                     spool=str(tmp_path / "empty-spool"))
    with pytest.raises(KeycamError, match="the first start needs the server"):
        build_job(config)
    config.model.path = str(folder / "keyed.onnx")
    with pytest.raises(ConfigError, match="is a full model; with forward.url, model.path is a split's feature"):
        build_job(config)


def test_keycam_run_forwards_with_a_configuration_file(repository, tmp_path):
    from tests.inprocess import keycam  # `keycam run` in this process, the server in its own

    folder, key = repository
    with ProcessServer(folder / "repo") as server:
        config = tmp_path / "keycam.toml"
        config.write_text(f'[source]\nkind = "fashion-mnist"\n[model]\nkey = "{folder / "device.key"}"\n'
                          f'[results]\npath = "{tmp_path / "out.jsonl"}"\n'
                          f'[forward]\nurl = "{server.url}"\nmodel = "fmnist"\nspool = "{tmp_path / "spool"}"\n'
                          f'[metrics]\nport = {free_port()}\n')
        done = keycam("run", "--config", str(config), timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(_lines(tmp_path / "out.jsonl")) == 20
    assert "20 answered, 0 refused" in done.stderr and "0 waiting" in done.stderr
    assert all("forward" in r["latency_ms"] for r in _lines(tmp_path / "out.jsonl"))  # a live run: latency kept


def test_forwarding_counters_on_the_metrics_endpoint(repository, tmp_path):
    import httpx

    from edge.metrics import MetricsServer

    folder, key = repository
    with ThreadServer(folder / "repo") as server:
        remote = connect(V2Client(server.url), "fmnist", "", key.fingerprint, tmp_path / "spool")
        sink = ForwardSink(V2Client(server.url), remote, ResultsSink(tmp_path / "out.jsonl"), Spool(tmp_path / "s"))
        metrics = MetricsServer()
        try:
            metrics.watch_forwarding(sink)
            for sequence in range(3):
                sink.write(_result(sequence, 0, "f", key.fingerprint, 0, np.zeros((28, 28, 1), np.uint8)))
            sink.write(_result(3, 0, "f", key.fingerprint, 0, np.zeros((2, 2, 1), np.uint8)))
            sink.close()
            text = httpx.get(f"http://127.0.0.1:{metrics.port}/metrics").text
        finally:
            metrics.close()
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith("keycam_forward")}
    assert values["keycam_forward_answered_total"] == 3 and values["keycam_forward_rejected_total"] == 1
    assert values["keycam_forward_pending"] == 0 and values["keycam_forward_dropped_total"] == 0
