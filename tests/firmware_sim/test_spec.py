"""The readout spec: schema, presets, files, the fixed-point transfer and frame checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.errors import FrameError, SpecError
from firmware_sim.spec import DEFAULT_SPEC, GAIN_ONE, PRESETS, ReadoutSpec
from firmware_sim.spec_files import load_spec, spec_from_mapping


def test_default_is_8bit_rgb_identity():
    assert DEFAULT_SPEC.channels == 3 and DEFAULT_SPEC.input_bits == 8 and DEFAULT_SPEC.output_bits == 8
    assert DEFAULT_SPEC.is_identity
    assert np.array_equal(DEFAULT_SPEC.transfer_table(), np.arange(256, dtype=np.uint8))


def test_transfer_black_level_gain_rounding_and_saturation_by_hand():
    spec = ReadoutSpec(black_level=16, gain_q16=GAIN_ONE * 5 // 4)  # y = round_half_up((x - 16) * 1.25)
    assert spec.transfer(0) == 0  # below black: clamps to 0
    assert spec.transfer(16) == 0
    assert spec.transfer(17) == 1  # 1.25 -> 1
    assert spec.transfer(18) == 3  # 2.5 -> 3 (half up)
    assert spec.transfer(19) == 4  # 3.75 -> 4
    assert spec.transfer(220) == 255  # 255.0 exactly
    assert spec.transfer(221) == 255  # 256.25 saturates
    assert spec.transfer(255) == 255
    assert not spec.is_identity


def test_transfer_between_bit_depths():
    spec = ReadoutSpec(input_bits=12, output_bits=8, gain_q16=GAIN_ONE // 16)
    assert spec.output_dtype == np.uint8 and spec.input_dtype == np.uint16
    assert [spec.transfer(x) for x in (0, 7, 8, 4087, 4088, 4095)] == [0, 0, 1, 255, 255, 255]
    up = ReadoutSpec(input_bits=8, output_bits=12, gain_q16=GAIN_ONE * 16)
    assert up.transfer(255) == 4080 and up.output_dtype == np.uint16


@settings(max_examples=60, deadline=None)
@given(
    input_bits=st.sampled_from([8, 10, 12, 16]),
    output_bits=st.sampled_from([8, 10, 12]),
    black=st.integers(0, 65535),
    gain=st.integers(0, 2**32 - 1),
)
def test_lookup_table_equals_the_integer_definition(input_bits, output_bits, black, gain):
    black %= 1 << input_bits
    spec = ReadoutSpec(input_bits=input_bits, output_bits=output_bits, black_level=black, gain_q16=gain)
    table = spec.transfer_table()
    assert table.dtype == spec.output_dtype and table.size == 1 << input_bits
    codes = sorted({0, 1, black, min(black + 1, spec.input_max), spec.input_max} | set(range(0, spec.input_max, 97)))
    assert [int(table[c]) for c in codes] == [spec.transfer(c) for c in codes]


def test_black_level_must_fit_the_input():
    with pytest.raises(SpecError, match="black_level = 256.*below 256"):
        spec_from_mapping({"black_level": 256})
    assert spec_from_mapping({"black_level": 256, "input_bits": 10}).black_level == 256


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"chanels": 3}, "unknown field 'chanels'"),
        ({"channels": 2}, "channels = 2"),
        ({"input_bits": 14}, "input_bits = 14"),
        ({"output_bits": 16}, "output_bits = 16"),
        ({"gain_q16": -1}, "gain_q16 = -1"),
        ({"gain_q16": 2**32}, "gain_q16 = 4294967296"),
        ({"gain_q16": 1.5}, "gain_q16 = 1.5"),
        ({"spec_version": 2}, "spec_version = 2"),
    ],
)
def test_bad_fields_name_the_field_and_value(data, fragment):
    with pytest.raises(SpecError) as caught:
        spec_from_mapping(data, source="file 'x.toml'")
    assert fragment in str(caught.value) and "file 'x.toml'" in str(caught.value)


def test_spec_files_round_trip_and_presets(tmp_path):
    for name, spec in PRESETS.items():
        assert load_spec(name) == spec
        path = tmp_path / f"{name}.toml"
        path.write_text(spec.to_toml())
        assert load_spec(path) == spec
    assert load_spec(None) == DEFAULT_SPEC


def test_spec_file_errors(tmp_path):
    with pytest.raises(SpecError, match="neither a preset"):
        load_spec(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("channels = [")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text("input_bits = 12\nblack_levle = 3\n")
    with pytest.raises(SpecError, match=r"typo.toml.*unknown field 'black_levle'"):
        load_spec(typo)


def test_check_frame_accepts_and_normalises():
    gray = ReadoutSpec(channels=1)
    frame = np.zeros((4, 5), np.uint8)
    assert gray.check_frame(frame).shape == (4, 5, 1)
    assert DEFAULT_SPEC.check_frame(np.zeros((1, 1, 3), np.uint8)).shape == (1, 1, 3)
    strided = np.zeros((8, 10, 3), np.uint8)[::2, ::2]
    assert DEFAULT_SPEC.check_frame(strided).flags.c_contiguous


@pytest.mark.parametrize(
    "spec, frame, fragment",
    [
        (DEFAULT_SPEC, np.zeros((4, 5), np.uint8), "shape (4, 5), expected (H, W, 3)"),
        (DEFAULT_SPEC, np.zeros((4, 5, 1), np.uint8), "has 1 channels"),
        (DEFAULT_SPEC, np.zeros((4, 5, 4), np.uint8), "has 4 channels"),
        (DEFAULT_SPEC, np.zeros((4, 5, 3), np.uint16), "dtype uint16, the spec's 8-bit input expects uint8"),
        (DEFAULT_SPEC, np.zeros((0, 5, 3), np.uint8), "at least 1"),
        (DEFAULT_SPEC, [[1, 2, 3]], "is a list"),
        (PRESETS["rgb10"], np.full((2, 2, 3), 1024, np.uint16), "code 1024, above the 10-bit input range 0..1023"),
        (PRESETS["raw12"], np.full((2, 2), 4096, np.uint16), "code 4096, above the 12-bit"),
    ],
)
def test_check_frame_names_expected_and_actual(spec, frame, fragment):
    with pytest.raises(FrameError) as caught:
        spec.check_frame(frame)
    assert fragment in str(caught.value)


def test_top_codes_are_accepted():
    assert PRESETS["rgb10"].check_frame(np.full((2, 2, 3), 1023, np.uint16)).max() == 1023
