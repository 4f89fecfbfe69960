"""Every registered source, sink and decoder keeps its kind's contract (tests/edge/contracts.py), and a kind added
the way docs/architecture.md says (one file and one registry line) is picked up by these tests and by the
configuration, with nothing else touched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from pydantic import TypeAdapter

from edge.answers import Answers
from edge.config import Config
from edge.frame import Frame, Result
from edge.runtime import KeyedModel
from edge.sinks import SECTIONS, Sink, SinkConfig, SinkContext, build_sinks
from edge.sources import KINDS, settings_union
from edge.sources.base import Source, SourceConfig
from edge.tasks import DECODERS, Decoder, Geometry, TaskConfig, make_decoder
from tests.edge.contracts import (DECODER_EXAMPLES, SINK_EXAMPLES, SOURCE_EXAMPLES, DecoderExample, SinkExample,
                                  SourceExample, manifest_with, run_decoder_contract, run_sink_contract,
                                  run_source_contract)
from tests.edge.servers import ThreadServer
from tests.edge.sinks.test_mqtt import MOSQUITTO, Broker


def test_every_registered_kind_has_an_example():
    assert set(SOURCE_EXAMPLES) == set(KINDS)
    assert set(SINK_EXAMPLES) == set(SECTIONS)
    assert set(DECODER_EXAMPLES) == set(DECODERS)


@pytest.mark.parametrize("kind", list(KINDS))
def test_source_contract(kind, tmp_path, monkeypatch):
    run_source_contract(kind, tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def sink_world(repository, tmp_path_factory):
    """(context, services, results): the Fashion-MNIST keyed model's run, a broker and a server on 127.0.0.1, and
    three answered frames."""
    folder, key = repository
    model = KeyedModel(folder / "keyed.onnx", key)
    answers = Answers.for_manifest(model.manifest, key)
    context = SinkContext(key, model.manifest, replay=True, labels=tuple(f"c{i}" for i in range(10)),
                          answers=answers)
    images = np.random.default_rng(2).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    results = []
    for i, image in enumerate(images):
        frame = Frame(image, i, i * 1000, "contract", measured=True, fingerprint=key.fingerprint, source_size=(28, 28))
        outputs = answers(model.named(model.run(frame)), frame)
        results.append(Result(frame, outputs, {"model": 1.0}))
    broker = Broker(tmp_path_factory.mktemp("broker")).start() if Path(MOSQUITTO).exists() else None
    with ThreadServer(folder / "repo") as server:
        yield context, {"broker": broker.port if broker else 0, "server": server.url}, results
    if broker is not None:
        broker.stop()


@pytest.mark.parametrize("name", list(SECTIONS))
def test_sink_contract(name, sink_world, tmp_path):
    context, services, results = sink_world
    if name == "mqtt" and not services["broker"]:
        pytest.skip("Debian's mosquitto is not installed (scripts/setup-venv.sh installs it)")
    if name == "forward":
        from edge.wire.client import V2Client

        from edge.sinks.forwarding import Forwarding

        settings = SECTIONS[name].model_validate(SINK_EXAMPLES[name].good(tmp_path, services))
        client = V2Client(settings.url)
        forwarding = Forwarding(settings, client, client.model("fmnist"), context.manifest, "the contract's server")
        context = SinkContext(**{**context.__dict__, "forwarding": forwarding})
    run_sink_contract(name, tmp_path, context, dict(services), results)


@pytest.mark.parametrize("name", list(DECODERS))
def test_decoder_contract(name, key):
    run_decoder_contract(name, key)


# -- a kind added as docs/architecture.md says ---------------------------------------------------------------------


class CountingSource(Source):
    """Three grey frames, 1, 2, 3: the smallest source there is."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count, self._made = count, 0

    def _open(self) -> None:
        self._made = 0

    def _read(self):
        if self._made >= self.count:
            return None
        self._made += 1
        return self._frame(np.full((24, 32, 3), self._made, np.uint8), self._made, "counting")


class CountingConfig(SourceConfig):
    kind: Literal["counting"] = "counting"
    count: int = 3

    def build(self, sensor) -> Source:
        return CountingSource(self.count)


class TallySink(Sink):
    """Counts the answers it is given; its section is on when `on` is set."""

    tallies: list[int] = []

    def write(self, result: Result) -> None:
        TallySink.tallies.append(result.sequence)


class TallyConfig(SinkConfig):
    on: bool = False

    def build(self, context: SinkContext) -> Sink | None:
        return TallySink() if self.on else None


class MaxDecoder(Decoder):
    """The index of the largest value of a (N, K) output, for a task of its own family."""

    name = "argmax-only"
    task = "classify"

    @classmethod
    def fits(cls, outputs) -> bool:
        return False  # never chosen by `auto` over the classify decoder; named in [task] decoder

    def decode(self, tensors, geometry: Geometry) -> dict:
        return {"index": int(np.argmax(tensors[0][0]))}


@pytest.fixture
def throwaway_kinds():
    KINDS.add("counting", CountingConfig)
    SECTIONS.add("tally", TallyConfig)
    DECODERS.add(MaxDecoder.name, MaxDecoder)
    SOURCE_EXAMPLES["counting"] = SourceExample(lambda d: {"kind": "counting"}, None, 3)
    SINK_EXAMPLES["tally"] = SinkExample(lambda d, s: {"on": True}, lambda d: {"on": "maybe"},
                                         lambda d, s: None)
    DECODER_EXAMPLES[MaxDecoder.name] = DecoderExample(
        [DECODER_EXAMPLES["classify"].outputs[0]], DECODER_EXAMPLES["classify"].tensors, [],
        {"kind": "classify", "decoder": MaxDecoder.name})
    yield
    KINDS.remove("counting")
    SECTIONS.remove("tally")
    DECODERS.remove(MaxDecoder.name)
    for table, name in ((SOURCE_EXAMPLES, "counting"), (SINK_EXAMPLES, "tally"), (DECODER_EXAMPLES, MaxDecoder.name)):
        del table[name]


def test_a_kind_added_in_one_file_and_one_line_is_picked_up(throwaway_kinds, tmp_path, monkeypatch, sink_world, key):
    """The contract runs over the registries find the new kinds; the configuration's source union takes the new
    source kind; build_sinks builds the new sink; [task] decoder names the new decoder."""
    test_every_registered_kind_has_an_example()
    run_source_contract("counting", tmp_path / "source", monkeypatch)
    assert TypeAdapter(settings_union()).validate_python({"kind": "counting", "count": 2}).count == 2
    context, services, results = sink_world
    (tmp_path / "sink").mkdir()
    TallySink.tallies = []
    run_sink_contract("tally", tmp_path / "sink", context, dict(services), results)
    assert TallySink.tallies == [0, 1, 2]
    assert [type(s) for s in build_sinks([TallyConfig(on=True)], context)] == [TallySink]
    run_decoder_contract(MaxDecoder.name, key)
    decoder = make_decoder(TaskConfig(kind="classify", decoder=MaxDecoder.name), manifest_with(
        DECODER_EXAMPLES["classify"].outputs))
    assert isinstance(decoder, MaxDecoder)
    assert json.loads(Config().model_dump_json())["task"]["decoder"] == "auto"
