"""The sealed readout (readout spec version 4) on the device: what leaves the sensor is ciphertext, indistinguishable
from uniform bytes; the keyed model is unchanged and answers as under the unsealed spec; a changed byte, a changed
header, another key or a replayed frame is refused, counted and never reaches the model; nonces never repeat."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy.stats import chisquare

from edge.config import Config
from edge.errors import FrameError
from edge.frame import Frame
from edge.job import build_job
from edge.lab.demo import shipped_photo
from edge.runtime import KeyedModel
from edge.seal import Opener, Seal, Sealer
from edge.sensor import Readout
from edge.sources.folder import FolderConfig
from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from export.zoo import CIFAR_MEAN, CIFAR_STD, resnet20
from firmware_sim.spec import PRESETS

SEALED = [name for name in PRESETS if PRESETS[name].is_sealed]


def _frames(count: int, shape=(32, 32, 3), seed: int = 0) -> list[Frame]:
    rng = np.random.default_rng(seed)
    return [Frame(rng.integers(0, 256, shape, dtype=np.uint8), i, 1_000_000 * i, "t") for i in range(count)]


@pytest.mark.parametrize("preset", ["rgb8-sealed", "rgb8-sealed-chacha"])
def test_a_sealed_measurement_opens_to_the_unsealed_one(key, preset):
    sealed = Readout(key, PRESETS[preset], 32, 32, sensor_order="rgb", source_order="rgb")
    plain = Readout(key, PRESETS["rgb8"], 32, 32, sensor_order="rgb", source_order="rgb")
    opener = Opener(key, PRESETS[preset])
    for frame in _frames(3):
        out = sealed.read(frame)
        assert isinstance(out.seal, Seal) and len(out.seal.tag) == 16
        assert not np.array_equal(out.image, plain.read(frame).image)  # ciphertext, not codes
        assert np.array_equal(opener.open(out).image, plain.read(frame).image)
    assert opener.opened == 3 and opener.refused == 0


def test_nonces_never_repeat_within_a_run_and_every_run_has_its_own_key(key):
    spec = PRESETS["rgb8-sealed"]
    first, second = Sealer(key, spec), Sealer(key, spec)  # a restart: a new run
    frame = _frames(1)[0]
    codes = np.zeros((32, 32, 3), np.uint8)
    seals = [first.seal(codes, frame, 0)[1].header for _ in range(50)]
    assert len({(h.run, h.counter) for h in seals}) == 50 and [h.counter for h in seals] == list(range(50))
    again = second.seal(codes, frame, 0)
    assert again[1].header.run != first.run and again[1].header.counter == 0  # counter 0 again, under another key
    assert not np.array_equal(again[0], first.seal(codes, frame, 0)[0])


def test_a_tampered_or_replayed_or_foreign_frame_is_refused(key, other_key):
    spec = PRESETS["rgb8-sealed"]
    readout = Readout(key, spec, 32, 32, sensor_order="rgb", source_order="rgb")
    good = readout.read(_frames(1)[0])
    opener = Opener(key, spec)
    flipped = good.image.copy()
    flipped[3, 4, 1] ^= 1
    cases = {
        "tag mismatch": good.replace(image=flipped),
        "says epoch 0": good.replace(epoch=1),  # the header says 0
        "sealed with key": Readout(other_key, spec, 32, 32).read(_frames(1)[0]),
    }
    header = good.seal.header
    later = type(header)(**{**header.__dict__, "sequence": header.sequence + 1})
    cases["tag mismatch (header)"] = good.replace(seal=Seal(later, good.seal.tag))  # the header is authenticated
    for reason, frame in cases.items():
        with pytest.raises(FrameError, match=reason.split(" (")[0]):
            opener.open(frame)
    assert np.array_equal(opener.open(good).image.shape, (32, 32, 3))
    with pytest.raises(FrameError, match="was seen before"):
        opener.open(good)  # the same frame again: a replay
    assert opener.refused == 5 and opener.opened == 1
    assert Seal.from_hex(good.seal.to_hex()) == good.seal


def test_sealed_codes_are_indistinguishable_from_uniform(key):
    """A chi-square test of the sealed bytes of 300 frames of a real photo (whose codes are far from uniform)."""
    import cv2

    photo = cv2.imread(str(shipped_photo("astronaut")))
    readout = Readout(key, PRESETS["rgb8-sealed"], 32, 32)
    counts = np.zeros(256, np.int64)
    raw = np.zeros(256, np.int64)
    for i in range(300):
        frame = readout.read(Frame(photo, i, i, "astronaut"))
        counts += np.bincount(frame.image.reshape(-1), minlength=256)
        raw += np.bincount(Readout(key, PRESETS["rgb8"], 32, 32).prepare(photo).reshape(-1), minlength=256)
    assert chisquare(counts).pvalue > 0.001  # 921,600 bytes: uniform
    assert chisquare(raw).pvalue < 1e-100  # the unsealed codes are not


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import hashlib

    from firmware_sim.keys import MasterKey

    key = MasterKey(hashlib.sha256(b"keycam tests").digest())
    folder = tmp_path_factory.mktemp("sealed")
    for name in ("rgb8", "rgb8-sealed"):
        save(keyify(resnet20(), key, KeyifyOptions(spec=PRESETS[name], mean=CIFAR_MEAN, std=CIFAR_STD)),
             folder / f"{name}.onnx")
    key.save(folder / "k.key")
    shutil.copy(shipped_photo("astronaut"), folder / "a.png")
    shutil.copy(shipped_photo("coffee"), folder / "b.png")
    return folder


def test_a_sealed_run_answers_as_the_unsealed_one(models, tmp_path):
    """The keyed model compiled for the sealed spec is the unsealed one's twin: the same answers, frame by frame."""
    answers = {}
    for name in ("rgb8", "rgb8-sealed"):
        config = Config()
        config.source = FolderConfig(path=models, pattern="*.png")
        config.model.path, config.model.key = str(models / f"{name}.onnx"), str(models / "k.key")
        config.results.path = str(tmp_path / f"{name}.jsonl")
        job = build_job(config, replay=True)
        summary = job.run()
        answers[name] = [json.loads(line)["outputs"] for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        if name == "rgb8-sealed":
            assert job.pipeline.opener.opened == 2 and "open" in summary["stage_ms_mean"]
    assert answers["rgb8"] == answers["rgb8-sealed"] and len(answers["rgb8"]) == 2
    assert KeyedModel(models / "rgb8-sealed.onnx").manifest.spec.is_sealed


def test_forwarded_sealed_measurements_are_opened_by_a_key_holding_server(models, tmp_path):
    """The device forwards ciphertext with its seal; `keycam serve --key` opens it before the model, and refuses a
    replayed request; a server without the key refuses to serve the sealed model at all."""
    from edge.errors import ModelError
    from edge.server.repository import ModelRepository
    from export.package.triton import export_triton
    from firmware_sim.keys import MasterKey
    from tests.edge.servers import ThreadServer

    key = MasterKey.load(models / "k.key")
    export_triton(models / "rgb8-sealed.onnx", tmp_path / "repo", "sealed")
    with pytest.raises(ModelError, match="serve it with --key KEYFILE"):
        ModelRepository(tmp_path / "repo")
    answers = {}
    for name, forwarded in (("local", False), ("forwarded", True)):
        config = Config()
        config.source = FolderConfig(path=models, pattern="*.png")
        config.model.path, config.model.key = str(models / "rgb8-sealed.onnx"), str(models / "k.key")
        config.results.path = str(tmp_path / f"{name}.jsonl")
        if forwarded:
            config.model.path = ""
            config.forward.model, config.forward.spool = "sealed", str(tmp_path / "spool")
        with ThreadServer(tmp_path / "repo", key=key) as server:
            config.forward.url = server.url if forwarded else ""
            job = build_job(config, replay=True)
            job.run()
            if forwarded:
                repository = server.app.state.repository
                assert repository.get("sealed").opener.opened == 2
        answers[name] = [json.loads(line)["outputs"] for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
    assert answers["forwarded"] == answers["local"] and len(answers["local"]) == 2


def test_a_spooled_sealed_measurement_waits_sealed_and_opens_once_delivered(models, tmp_path):
    """A server that is down: the sealed frames go to the spool as ciphertext with their seals (no spool entry
    holds a code of the measurement in the clear); a later run delivers them to a key-holding server, which opens
    each once and answers as the local model does."""
    import cv2

    from edge.frame import Result
    from edge.sinks.forward import ForwardSink
    from edge.sinks.results import ResultsSink
    from edge.wire.client import V2Client, connect
    from edge.wire.spool import Spool
    from export.package.triton import export_triton
    from firmware_sim.keys import MasterKey
    from tests.edge.servers import ThreadServer, free_port

    key, spec = MasterKey.load(models / "k.key"), PRESETS["rgb8-sealed"]
    export_triton(models / "rgb8-sealed.onnx", tmp_path / "repo", "sealed")
    readout = Readout(key, spec, 32, 32)
    photo = cv2.imread(str(models / "a.png"))
    frames = [readout.read(Frame(photo, i, 1_000_000 * i, "a.png")) for i in range(4)]

    local = KeyedModel(models / "rgb8-sealed.onnx")
    opener = Opener(key, spec)
    expected = [local.run(opener.open(f).image[np.newaxis]) for f in frames]
    with ThreadServer(tmp_path / "repo", key=key) as server:
        remote = connect(V2Client(server.url), "sealed", "", key.fingerprint, tmp_path / "spool")
    down = ForwardSink(V2Client(f"http://127.0.0.1:{free_port()}", timeout_s=0.5), remote,
                       ResultsSink(tmp_path / "first.jsonl"), Spool(tmp_path / "spool"), retry_min_s=0.05, drain_s=0.2)
    for frame in frames:
        down.write(Result(frame))
    down.close()
    entries = sorted((tmp_path / "spool").glob("*.kcs"))
    assert len(entries) == 4
    plain = readout.prepare(photo)  # the unsealed codes the spool must not hold
    assert all(plain.tobytes()[:64] not in entry.read_bytes() for entry in entries)
    with ThreadServer(tmp_path / "repo", key=key) as server:
        sink = ForwardSink(V2Client(server.url), remote, ResultsSink(tmp_path / "second.jsonl"),
                           Spool(tmp_path / "spool"), retry_min_s=0.05, drain_s=30)
        sink.close()
        assert server.app.state.repository.get("sealed").opener.opened == 4
    lines = [json.loads(line) for line in (tmp_path / "second.jsonl").read_text().splitlines()]
    assert [line["sequence"] for line in lines] == [0, 1, 2, 3]
    for line, want in zip(lines, expected):
        (got,) = line["outputs"].values()
        assert got["label"] == int(np.argmax(want[0]))  # the local keyed model's answer on the opened frame


def test_a_sealed_recording_holds_ciphertext_and_replays_as_the_live_run(models, tmp_path):
    """The recording of a sealed run holds the sealed codes with their seals; the key holder's replay opens each
    frame and answers as the live run did; a second replay of the same file opens again (a replay window is per
    reader, not per file)."""
    from edge.recording import read_recording
    from edge.sources.recording import RecordingConfig

    def run(source, name: str) -> list:
        config = Config()
        config.source = source
        config.model.path, config.model.key = str(models / "rgb8-sealed.onnx"), str(models / "k.key")
        config.results.path = str(tmp_path / f"{name}.jsonl")
        if name == "live":
            config.record.path = str(tmp_path / "sealed.mcap")
        build_job(config, replay=True).run()
        return [json.loads(line)["outputs"] for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]

    live = run(FolderConfig(path=models, pattern="*.png"), "live")
    recorded = list(read_recording(tmp_path / "sealed.mcap"))
    assert len(recorded) == 2 and all(r.seal for r in recorded)
    assert chisquare(np.bincount(np.concatenate([r.image.reshape(-1) for r in recorded]),
                                 minlength=256)).pvalue > 1e-6  # ciphertext, not codes
    source = RecordingConfig(path=tmp_path / "sealed.mcap")
    assert run(source, "replay") == live == run(source, "again")
