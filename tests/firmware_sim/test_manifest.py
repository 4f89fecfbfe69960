"""The manifest's table_groups: written only when set, and refused when it names no sensor table or a group < 1."""

from __future__ import annotations

import json

import pytest

from firmware_sim.errors import ModelError
from firmware_sim.manifest import InputSpec, Manifest
from firmware_sim.spec import PRESETS


def _manifest(**extra) -> Manifest:
    spec = InputSpec(name="measurement", shape=[None, 4, 4, 3], dtype="uint8", channel_order="rgb",
                     model_channel_order="rgb", mean=[0.0] * 3, std=[1.0] * 3, code_scale=1.0)
    return Manifest(key_fingerprint="kc1:0", policy="boundary", epoch=0, plain_sha256="0", layout_salt="0",
                    outputs=[], spec=PRESETS["rgb8"], input=spec, sensor_tables=["keycam/sensor-index/1"], **extra)


def test_table_groups_round_trip_and_are_left_out_when_empty():
    grouped = _manifest(table_groups={"keycam/sensor-index/1": 3})
    assert Manifest.from_json(grouped.to_json()) == grouped
    assert "table_groups" not in _manifest().to_json()  # a table of positions: written as before


@pytest.mark.parametrize("groups, why", [({"keycam/other": 3}, "not one of sensor_tables"),
                                         ({"keycam/sensor-index/1": 0}, "greater than or equal to 1")])
def test_table_groups_must_name_a_sensor_table_and_a_group_of_at_least_one(groups, why):
    text = json.loads(_manifest().to_json())
    text["table_groups"] = groups
    with pytest.raises(ModelError, match="not a valid keycam manifest"):
        Manifest.from_json(json.dumps(text))
    with pytest.raises(ValueError, match=why):
        Manifest.model_validate(text)
