"""The contracts every plug-in kind keeps, as functions a test runs over a registry (in the manner of timm's
contract tests: a kind registered anywhere is tested for free).

- A **source** kind: its settings build a source for the run's sensor format; opened, it yields `Frame`s numbered
  0, 1, 2, ... (measured ones carrying their epoch and key), then None at its end; it closes twice without harm; and
  settings it cannot read are refused with a `KeycamError` (one line for the user), never another exception.
- A **sink** kind: its section builds a sink (or None when it is left off), which starts, takes results in order,
  closes, and says what it did; settings it cannot use are refused when the section is validated or built.
- A **decoder**: it accepts the outputs of its family, refuses others at start-up with a `ConfigError`, and turns a
  frame's tensors into a JSON answer; tensors that do not fit are that frame's `FrameError`.

Each kind's example lives in a table below, keyed by its registered name; a test checks that the tables cover
every registered kind, so a new kind without an example fails until it has one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edge.answers import Answers
from edge.errors import ConfigError, FrameError, KeycamError
from edge.frame import Frame, Result
from edge.sensor import SensorFormat
from edge.sinks import SECTIONS, SinkContext
from edge.sources import KINDS
from edge.tasks import DECODERS, TaskConfig, make_decoder
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import InputSpec, Manifest, OutputSpec
from firmware_sim.spec import DEFAULT_SPEC
from firmware_sim.words import TASKS

SENSOR = SensorFormat(DEFAULT_SPEC, 24, 32, "rgb")


# -- sources ------------------------------------------------------------------------------------------------------


@dataclass
class SourceExample:
    """Good settings made in a folder (and what must hold), and settings the kind must refuse (None: it has none)."""

    good: Callable[[Path], dict]
    bad: Callable[[Path, pytest.MonkeyPatch], dict] | None
    frames: int  # how many frames the good settings yield (0: endless; the contract reads three)
    setup: Callable[[pytest.MonkeyPatch], None] | None = None  # e.g. a fake camera stack


def _pictures(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        cv2.imwrite(str(folder / f"f{i}.png"), rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    return folder


def _video(path: Path, count: int = 3) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(count):
        writer.write(np.full((24, 32, 3), 40 * i, np.uint8))
    writer.release()
    return path


def _recording(path: Path, count: int = 3) -> Path:
    from edge.recording import Recorder

    with Recorder(path, DEFAULT_SPEC, "kc1:0123456789abcdef") as recorder:
        for i in range(count):
            recorder.write(np.full((24, 32, 3), i, np.uint8), i, i, i * 1000, source_size=(64, 48))
    return path


def _fake_camera(monkeypatch: pytest.MonkeyPatch) -> None:
    import edge.sources.picamera as picamera
    from tests.edge.sources.fake_picamera2 import BACKEND, FakePicamera2

    monkeypatch.setattr(picamera, "load_backend", lambda: BACKEND)
    monkeypatch.setattr(FakePicamera2, "instances", [])


def _no_camera(folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    from tests.edge.sources.fake_picamera2 import FakePicamera2

    monkeypatch.setattr(FakePicamera2, "attached", ())  # no camera on the cable
    return {"kind": "picamera"}


def _empty_folder(folder: Path, _) -> dict:
    (folder / "empty").mkdir()
    return {"kind": "folder", "path": str(folder / "empty")}


def _not_a_video(folder: Path, _) -> dict:
    (folder / "x.avi").write_text("no video here")
    return {"kind": "video", "path": str(folder / "x.avi")}


def _not_a_recording(folder: Path, _) -> dict:
    (folder / "b.mcap").write_bytes(b"not an MCAP file")
    return {"kind": "recording", "path": str(folder / "b.mcap")}


SOURCE_EXAMPLES: dict[str, SourceExample] = {
    "folder": SourceExample(lambda d: {"kind": "folder", "path": str(_pictures(d / "f"))}, _empty_folder, 3),
    "video": SourceExample(lambda d: {"kind": "video", "path": str(_video(d / "c.avi"))}, _not_a_video, 3),
    "recording": SourceExample(lambda d: {"kind": "recording", "path": str(_recording(d / "r.mcap"))},
                               _not_a_recording, 3),
    "opencv": SourceExample(lambda d: {"kind": "opencv", "url": _video(d / "s.avi").as_uri()},  # a stream: file://
                            lambda d, _: {"kind": "opencv", "url": "rtsp://127.0.0.1:9/nothing-listens"}, 3),
    "picamera": SourceExample(lambda d: {"kind": "picamera", "frame_rate": 30.0}, _no_camera, 0, _fake_camera),
    "default": SourceExample(lambda d: {"kind": "default"}, None, 5),
    "fashion-mnist": SourceExample(lambda d: {"kind": "fashion-mnist"}, None, 20),
}


def source_settings(kind: str, data: dict):
    return KINDS[kind].model_validate(data)


def run_source_contract(kind: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = SOURCE_EXAMPLES[kind]
    if example.setup is not None:
        example.setup(monkeypatch)
    (folder / "good").mkdir(parents=True)
    source = source_settings(kind, example.good(folder / "good")).build(SENSOR)
    frames = []
    with source:
        while (frame := source.read()) is not None:
            frames.append(frame)
            if example.frames == 0 and len(frames) == 3:
                break
    source.close()  # closing twice is harmless
    assert len(frames) == (example.frames or 3), kind
    assert [f.sequence for f in frames] == list(range(len(frames))), kind
    for frame in frames:
        assert isinstance(frame, Frame) and frame.measured == source.measured, kind
        assert isinstance(frame.image, np.ndarray) and frame.image.ndim == 3, kind
        assert frame.image.dtype in (np.uint8, np.uint16) and isinstance(frame.timestamp_ns, int), kind
        assert frame.origin, kind
    if example.bad is None:
        return
    (folder / "bad").mkdir()
    try:
        bad = source_settings(kind, example.bad(folder / "bad", monkeypatch)).build(SENSOR)
        with bad:
            bad.read()
    except KeycamError as error:
        assert "\n" not in str(error), (kind, str(error))
    else:
        raise AssertionError(f"source kind {kind!r} read its bad example without a KeycamError")


# -- sinks --------------------------------------------------------------------------------------------------------


@dataclass
class SinkExample:
    """Settings that switch the sink on (made in a folder, given the services), and settings it must refuse."""

    good: Callable[[Path, dict], dict]
    bad: Callable[[Path], dict]
    check: Callable[[Path, dict], None]  # what the good sink must have written, once closed
    ready: Callable[[object], bool] | None = None  # started and connected (a broker): waited for before writing


def _results_lines(folder: Path, _) -> None:
    lines = [json.loads(line) for line in (folder / "r.jsonl").read_text().splitlines()]
    assert [r["sequence"] for r in lines] == [0, 1, 2] and all("outputs" in r for r in lines)


def _recorded(folder: Path, _) -> None:
    from mcap.reader import make_reader

    from edge.recording import MEASUREMENT_TOPIC

    with open(folder / "m.mcap", "rb") as handle:
        summary = make_reader(handle).get_summary()
    (channel,) = [c for c in summary.channels.values() if c.topic == MEASUREMENT_TOPIC]
    assert summary.statistics.channel_message_counts[channel.id] == 3


def _published(folder: Path, services: dict) -> None:
    stats = services["mqtt_sink"].stats
    assert stats.frames == stats.answers == 3 and stats.dropped == 0 and stats.published > 3, stats


def _events_logged(folder: Path, _) -> None:
    assert [json.loads(line) for line in (folder / "e.jsonl").read_text().splitlines()] == []  # a classifier: none


def _page_served(sink) -> bool:
    import httpx

    return httpx.get(sink.server.url + "healthz", timeout=30).text == "ok"


def _page_fed(folder: Path, services: dict) -> None:
    page = services["mqtt_sink"]  # the sink under test
    assert page.feed.version == 3 and page.server is None and page.summary().startswith("web page on http://127.0.0.1:")


def _counted(folder: Path, services: dict) -> None:
    counts = services["mqtt_sink"].snapshot()  # the sink under test
    assert counts["frames"] == 3 and counts["detections"] == {} and not counts["tracking"]  # a classifier: no boxes


def _forwarded(folder: Path, services: dict) -> None:
    lines = [json.loads(line) for line in (folder / "fwd.jsonl").read_text().splitlines()]
    assert [r["sequence"] for r in lines] == [0, 1, 2]


SINK_EXAMPLES: dict[str, SinkExample] = {
    "results": SinkExample(lambda d, s: {"path": str(d / "r.jsonl")},
                           lambda d: {"path": str(d), "existing": "sideways"}, _results_lines),
    "record": SinkExample(lambda d, s: {"path": str(d / "m.mcap")}, lambda d: {"path": str(d / "m.txt")}, _recorded),
    "mqtt": SinkExample(lambda d, s: {"host": "127.0.0.1", "port": s["broker"], "device_id": "contract",
                                      "answers": True},
                        lambda d: {"host": "127.0.0.1", "password_file": str(d / "pw")}, _published,
                        lambda sink: sink.stats.connects > 0),
    "forward": SinkExample(lambda d, s: {"url": s["server"], "model": "fmnist", "spool": str(d / "spool")},
                           lambda d: {"url": "http://127.0.0.1:9"}, _forwarded),
    "web": SinkExample(lambda d, s: {"enabled": True, "port": 0}, lambda d: {"enabled": True, "host": "0.0.0.0"},
                       _page_fed, _page_served),
    "events": SinkExample(lambda d, s: {"enabled": True, "path": str(d / "e.jsonl")},
                          lambda d: {"path": str(d / "e.jsonl")}, _events_logged),
    "metrics": SinkExample(lambda d, s: {"port": 9100}, lambda d: {"port": 70000}, _counted),
}


def run_sink_contract(name: str, folder: Path, context: SinkContext, services: dict, results: list[Result]) -> None:
    from edge.sinks import build_sinks
    from edge.sinks.results import ResultsConfig

    example, section = SINK_EXAMPLES[name], SECTIONS[name]
    section()  # the defaults are valid settings (the results go to standard output; the other sinks are off)
    settings = section.model_validate(example.good(folder, services))
    sections = [settings] if not section.receives_answers else [ResultsConfig(path=str(folder / "fwd.jsonl")),
                                                                settings]
    sinks = build_sinks(sections, context)
    assert sinks and all(s is not None for s in sinks)
    services["mqtt_sink"] = sinks[0]  # what _published reads
    for sink in sinks:
        sink.start()
    deadline = time.monotonic() + 30  # hang protection only
    while example.ready is not None and not example.ready(sinks[0]):
        assert time.monotonic() < deadline, f"sink {name!r} never became ready"
        time.sleep(0.02)
    for result in results:
        for sink in sinks:
            sink.write(result)
    for sink in sinks:
        sink.close()
        assert sink.summary() is None or isinstance(sink.summary(), str)
    example.check(folder, services)
    try:
        section.model_validate(example.bad(folder)).build(context)
    except (KeycamError, ValidationError) as error:
        assert str(error).strip(), name
    else:
        raise AssertionError(f"sink {name!r} accepted its bad example")


# -- decoders -----------------------------------------------------------------------------------------------------


@dataclass
class DecoderExample:
    """Outputs of the decoder's family, a frame's tensors for them, and outputs it must refuse."""

    outputs: list[OutputSpec]
    tensors: Callable[[np.random.Generator], list[np.ndarray]]
    wrong: list[OutputSpec]
    settings: dict


def _spec(name: str, shape: list, kind: str = "plain") -> OutputSpec:
    return OutputSpec(name=name, shape=shape, kind=kind)


def _blazeface_like(rng):
    return [rng.normal(size=(1, 896, 16)).astype(np.float32), rng.normal(size=(1, 896, 1)).astype(np.float32)]


def _head(rng, channels: int, anchors: int = 336, classes: int = 1, size: float = 128.0) -> np.ndarray:
    """A YOLO head (1, 4 + classes + extra, anchors): boxes in a 128 x 128 input, scores in [0, 1], extra ~ N(0, 1)."""
    head = rng.normal(size=(1, channels, anchors)).astype(np.float32)
    head[0, :2] = rng.uniform(0, size, (2, anchors))
    head[0, 2:4] = rng.uniform(4, size / 4, (2, anchors))
    head[0, 4:4 + classes] = rng.uniform(0, 1, (classes, anchors))
    return head


def _rows(rng, count: int = 300, normalised: bool = False) -> np.ndarray:
    """End-to-end rows (1, count, 6), best first: x0, y0, x1, y1 in a 128 x 128 input (or cx, cy, w, h in [0, 1])."""
    rows = np.zeros((1, count, 6), np.float32)
    corner = rng.uniform(0, 96, (count, 2))
    rows[0, :, :4] = rng.uniform(0, 1, (count, 4)) if normalised else np.hstack([corner, corner + 24])
    rows[0, :, 4] = np.sort(rng.uniform(0, 1, count))[::-1]
    rows[0, :, 5] = rng.integers(0, 3, count)
    return rows


def _obb_head(rng):
    head = _head(rng, 7, classes=2)
    head[0, 6] = rng.uniform(-np.pi / 4, 3 * np.pi / 4, 336)
    return head


DECODER_EXAMPLES: dict[str, DecoderExample] = {
    "tensors": DecoderExample([_spec("logits", [None, 10])], lambda r: [r.normal(size=(1, 10)).astype(np.float32)],
                              [], {"kind": "tensors"}),
    "classify": DecoderExample([_spec("logits", [None, 10])], lambda r: [r.normal(size=(1, 10)).astype(np.float32)],
                               [], {"kind": "classify"}),
    "yolo": DecoderExample([_spec("output0", [None, 84, 1344])],
                           lambda r: [np.abs(r.normal(size=(1, 84, 1344))).astype(np.float32) * 30],
                           [_spec("output0", [None, 3, 10])], {"kind": "detect", "decoder": "yolo"}),
    "ssd": DecoderExample([_spec("regressors", [1, 896, 16]), _spec("classificators", [1, 896, 1])], _blazeface_like,
                          [_spec("regressors", [1, 100, 16]), _spec("classificators", [1, 100, 1])],
                          {"kind": "detect", "decoder": "ssd"}),
    "segment": DecoderExample([_spec("map", [None, 5, 16, 16])],
                              lambda r: [r.normal(size=(1, 5, 16, 16)).astype(np.float32)],
                              [_spec("map", [None, 5])], {"kind": "segment"}),
    "instances": DecoderExample([_spec("output0", [None, 37, 336]), _spec("output1", [None, 32, 32, 32], "dense")],
                                lambda r: [_head(r, 37), r.normal(size=(1, 32, 32, 32)).astype(np.float32)],
                                [_spec("output0", [None, 37, 336])], {"kind": "segment"}),
    "pose": DecoderExample([_spec("output0", [None, 56, 336])], lambda r: [_head(r, 56)],
                           [_spec("output0", [None, 3, 10])], {"kind": "pose"}),
    "obb": DecoderExample([_spec("output0", [None, 7, 336])], lambda r: [_obb_head(r)],
                          [_spec("output0", [None, 3, 10])], {"kind": "obb"}),
    "end2end": DecoderExample([_spec("output0", [None, 300, 6])], lambda r: [_rows(r)],
                              [_spec("output0", [None, 3, 10])], {"kind": "detect"}),
    "rtdetr": DecoderExample([_spec("output0", [None, 300, 6])], lambda r: [_rows(r, normalised=True)],
                             [_spec("output0", [None, 3, 10])], {"kind": "detect", "decoder": "rtdetr"}),
}


def manifest_with(outputs: list[OutputSpec], size: tuple[int, int] = (128, 128)) -> Manifest:
    height, width = size
    inputs = InputSpec(name="measurement", shape=[None, height, width, 3], dtype="uint8", channel_order="rgb",
                       model_channel_order="rgb", mean=[0.0] * 3, std=[1.0] * 3, code_scale=1.0)
    return Manifest(key_fingerprint="kc1:0123456789abcdef", policy="boundary", spec=DEFAULT_SPEC, epoch=0,
                    plain_sha256="0" * 64, layout_salt="contract", input=inputs, outputs=outputs)


def run_decoder_contract(name: str, key: MasterKey) -> None:
    example = DECODER_EXAMPLES[name]
    settings = TaskConfig.model_validate(example.settings)
    manifest = manifest_with(example.outputs)
    decoder = make_decoder(settings, manifest)
    assert type(decoder) is DECODERS[name] and decoder.task in ("tensors", *TASKS)
    answers = Answers(manifest, decoder, key)
    frame = Frame(None, 0, 0, "contract", measured=True, source_size=(256, 256))
    tensors = example.tensors(np.random.default_rng(0))
    answer = answers({spec.name: t for spec, t in zip(example.outputs, tensors)}, frame)
    assert isinstance(answer, dict)
    json.dumps(answer)  # a JSON answer
    first = example.outputs[0]
    with pytest.raises(FrameError):  # a tensor that does not fit the manifest: the frame's error
        answers({first.name: np.zeros((1, 3), np.float32), **{s.name: t for s, t in zip(example.outputs[1:],
                                                                                         tensors[1:])}}, frame)
    if example.wrong:
        with pytest.raises(ConfigError):
            make_decoder(settings, manifest_with(example.wrong))
