"""Registries of kinds refuse a name twice, and the configuration schema is made from them: every registered source
kind and sink section is in the schema, strict, and every field is described. The expected sets come from the
registries themselves (a new kind is tested for free), and a path on the command line goes to the kind that claims
it most surely, whatever the registry's order."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from edge.config import Config, LoopConfig, ModelConfig, ReadoutConfig, override
from edge.errors import ConfigError
from edge.sinks import SECTIONS, SinkConfig
from edge.sources import KINDS, config_for_path
from edge.sources.base import CLAIM_EXACT, SourceConfig
from firmware_sim.registry import Registry


def test_a_name_registered_twice_is_refused():
    registry = Registry("source")
    registry.add("folder", object)
    with pytest.raises(ValueError, match="source kind 'folder' is registered twice"):
        registry.add("folder", int)
    assert list(registry) == ["folder"] and registry["folder"] is object


def _models() -> list[type[BaseModel]]:
    return [*KINDS.values(), *SECTIONS.values(), ModelConfig, ReadoutConfig, LoopConfig]


@pytest.mark.parametrize("model", _models(), ids=lambda m: m.__name__)
def test_every_setting_is_described_and_unknown_keys_are_refused(model):
    assert model.model_config.get("extra") == "forbid"
    undescribed = [name for name, field in model.model_fields.items() if name != "kind" and not field.description]
    assert undescribed == []


REQUIRED = {"folder": {"path": "f"}, "video": {"path": "v.mp4"}, "recording": {"path": "r.mcap"},
            "opencv": {"camera": 0}}  # the settings a kind cannot do without, where it has any


def _required(kind: str) -> dict:
    required = {name for name, field in KINDS[kind].model_fields.items() if field.is_required() and name != "kind"}
    assert required <= set(REQUIRED.get(kind, {})), f"give REQUIRED an example for source kind {kind!r}"
    return REQUIRED.get(kind, {})


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_source_kind_is_in_the_schema(kind):
    assert Config.model_validate({"source": {"kind": kind, **_required(kind)}}).source.kind == kind
    assert Config.model_fields["source"].default_factory().kind == "default"


def test_the_configuration_declares_exactly_the_registered_sink_sections():
    declared = {name for name, field in Config.model_fields.items()
                if isinstance(field.annotation, type) and issubclass(field.annotation, SinkConfig)}
    assert declared == set(SECTIONS)
    assert all(Config.model_fields[name].annotation is section for name, section in SECTIONS.items())
    assert [type(s) for s in Config().sink_sections()] == list(SECTIONS.values())


def test_a_path_on_the_command_line_names_its_kind(tmp_path):
    (tmp_path / "frames").mkdir()
    (tmp_path / "clip.avi").write_bytes(b"not checked here")
    (tmp_path / "one [1].png").write_bytes(b"")
    assert config_for_path(tmp_path / "r.mcap").kind == "recording"  # named, even before it exists
    assert config_for_path(tmp_path / "frames").kind == "folder"
    single = config_for_path(tmp_path / "one [1].png")
    assert single.kind == "folder" and Path(single.path) == tmp_path and single.pattern == "one [[]1].png"
    assert config_for_path(tmp_path / "clip.avi").kind == "video"
    with pytest.raises(ConfigError, match="does not exist"):
        config_for_path(tmp_path / "absent")


def test_the_strongest_claim_wins_and_a_tie_is_refused(tmp_path, monkeypatch):
    """The registry's order decides nothing: a kind registered first that claims .mcap files only as a fallback
    loses to the recording kind; two kinds that claim a path equally are refused, naming both."""
    from typing import Literal

    class Greedy(SourceConfig):
        kind: Literal["greedy"] = "greedy"

        @classmethod
        def claim(cls, path: Path) -> int:
            return self_claim

        @classmethod
        def for_path(cls, path: Path) -> SourceConfig:
            return cls()

    items = KINDS._items
    monkeypatch.setattr(KINDS, "_items", {"greedy": Greedy, **items})  # registered first
    self_claim = 1
    assert config_for_path(tmp_path / "r.mcap").kind == "recording"
    self_claim = CLAIM_EXACT
    with pytest.raises(ConfigError, match="claimed by the source kinds greedy and recording alike"):
        config_for_path(tmp_path / "r.mcap")


def test_command_line_settings_meet_the_files_checks():
    with pytest.raises(ConfigError, match="loop.max_frames = -1"):
        override(Config(), **{"loop.max_frames": -1})
    with pytest.raises(ConfigError, match="record.plain_debug needs record.path"):
        override(Config(), **{"record.plain_debug": True})
    assert override(Config(), **{"loop.max_frames": 3}).loop.max_frames == 3
