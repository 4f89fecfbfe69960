"""Registries of kinds refuse a name twice, and the configuration schema is made from them: every registered source
kind and sink section is in the schema, strict, and every field is described."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from edge.config import Config, LoopConfig, MetricsConfig, ModelConfig, ReadoutConfig, override
from edge.errors import ConfigError
from edge.registry import Registry
from edge.sinks import SECTIONS
from edge.sources import KINDS, config_for_path


def test_a_name_registered_twice_is_refused():
    registry = Registry("source")
    registry.add("folder", object)
    with pytest.raises(ValueError, match="source kind 'folder' is registered twice"):
        registry.add("folder", int)
    assert list(registry) == ["folder"] and registry["folder"] is object


def _models() -> list[type[BaseModel]]:
    return [*KINDS.values(), *SECTIONS.values(), ModelConfig, ReadoutConfig, LoopConfig, MetricsConfig]


@pytest.mark.parametrize("model", _models(), ids=lambda m: m.__name__)
def test_every_setting_is_described_and_unknown_keys_are_refused(model):
    assert model.model_config.get("extra") == "forbid"
    undescribed = [name for name, field in model.model_fields.items() if name != "kind" and not field.description]
    assert undescribed == []


def test_every_kind_and_section_is_in_the_schema():
    source = Config.model_fields["source"]
    assert set(KINDS) == {"default", "fashion-mnist", "folder", "video", "recording", "opencv", "picamera"}
    for kind in KINDS:
        assert Config.model_validate({"source": {"kind": kind, **_required(kind)}}).source.kind == kind
    assert source.default_factory().kind == "default"
    assert set(SECTIONS) <= set(Config.model_fields)


def _required(kind: str) -> dict:
    return {"folder": {"path": "f"}, "video": {"path": "v.mp4"}, "recording": {"path": "r.mcap"},
            "opencv": {"camera": 0}}.get(kind, {})


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


def test_command_line_settings_meet_the_files_checks():
    with pytest.raises(ConfigError, match="loop.max_frames = -1"):
        override(Config(), **{"loop.max_frames": -1})
    with pytest.raises(ConfigError, match="record.plain_debug needs record.path"):
        override(Config(), **{"record.plain_debug": True})
    assert override(Config(), **{"loop.max_frames": 3}).loop.max_frames == 3
