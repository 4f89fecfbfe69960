"""Readout spec version 2: the Bayer mode (cells R, Gr, Gb, B of a CFA mosaic) and MSB-aligned input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from firmware_sim.cfa import CANONICAL, PHASES, cell_offsets, to_cells, to_mosaic
from firmware_sim.errors import FrameError, ModelError, SpecError
from firmware_sim.manifest import InputSpec, IspSpec, Manifest
from firmware_sim.readout import readout, stream
from firmware_sim.spec import GAIN_ONE, PRESETS, ReadoutSpec
from firmware_sim.spec_files import load_spec, spec_from_mapping

ONE_CELL = np.array([[1, 2], [3, 4]], np.uint16)  # photosites (0,0)=1 (0,1)=2 (1,0)=3 (1,1)=4


def bayer(cfa: str = "RGGB", **fields) -> ReadoutSpec:
    return ReadoutSpec(spec_version=2, cfa=cfa, channels=4, **{"input_bits": 12, "output_bits": 12, **fields})


@pytest.mark.parametrize("cfa, codes", [("RGGB", (1, 2, 3, 4)), ("GRBG", (2, 1, 4, 3)), ("GBRG", (3, 4, 1, 2)),
                                        ("BGGR", (4, 3, 2, 1))])
def test_a_cell_is_read_in_canonical_order_whatever_the_phase(key, cfa, codes):
    """By hand: Gr is the green on the red row, Gb the green on the blue row."""
    spec = bayer(cfa)
    assert tuple(spec.cells(ONE_CELL)[0, 0]) == codes
    (pixel,) = list(stream(ONE_CELL, key, spec))
    assert pixel.codes == codes and pixel.address == 0
    assert readout(ONE_CELL, key, spec).shape == (1, 1, 4)
    colours = dict(zip(CANONICAL, cell_offsets(cfa)))
    assert cfa[2 * colours["R"][0] + colours["R"][1]] == "R" and cfa[2 * colours["B"][0] + colours["B"][1]] == "B"
    assert colours["Gr"][0] == colours["R"][0] and colours["Gb"][0] == colours["B"][0]


@pytest.mark.parametrize("cfa", PHASES)
def test_cells_and_mosaic_are_inverse(cfa):
    spec = bayer(cfa)
    mosaic = np.random.default_rng(1).integers(0, 4096, (6, 10)).astype(np.uint16)
    cells = spec.cells(mosaic)
    assert cells.shape == (3, 5, 4) and cells.dtype == np.uint16
    assert np.array_equal(spec.mosaic(cells)[:, :, 0], mosaic)
    assert np.array_equal(to_mosaic(to_cells(mosaic, cfa), cfa)[:, :, 0], mosaic)


def test_msb_words_drop_the_bits_below_the_code(key):
    spec = PRESETS["bayer12msb"]
    assert spec.input_dtype == np.uint16 and spec.alignment_shift == 4
    words = (ONE_CELL << 4) | 0xF  # the low 4 bits are noise below the ADC's resolution
    assert tuple(spec.cells(words)[0, 0]) == (1, 2, 3, 4)
    assert tuple(readout(words, key, spec)[0, 0]) == (1, 2, 3, 4)
    assert np.array_equal(spec.mosaic(spec.cells(words))[:, :, 0], ONE_CELL << 4)
    top = np.full((2, 2), 0xFFFF, np.uint16)  # any word is valid: the code is its top 12 bits
    assert tuple(readout(top, key, spec)[0, 0]) == (4095,) * 4
    eight = ReadoutSpec(spec_version=2, cfa="BGGR", channels=4, input_alignment="msb")
    assert eight.input_dtype == np.uint16 and eight.output_dtype == np.uint8
    assert tuple(readout(ONE_CELL << 8, key, eight)[0, 0]) == (4, 3, 2, 1)


def test_pixel_specs_take_msb_input_too(key):
    spec = ReadoutSpec(spec_version=2, channels=1, input_bits=10, output_bits=10, input_alignment="msb")
    frame = (np.arange(12, dtype=np.uint16).reshape(3, 4, 1) << 6) | 0x3F
    out = readout(frame, key, spec)
    assert sorted(out.ravel().tolist()) == list(range(12))


def test_bayer_transfer_applies_per_code(key):
    spec = bayer("GRBG", output_bits=8, black_level=256, gain_q16=GAIN_ONE // 16)
    mosaic = np.array([[0, 4095], [256, 272]], np.uint16)  # G=0 R=4095 / B=256 G=272
    assert tuple(readout(mosaic, key, spec)[0, 0]) == (240, 0, 1, 0)  # R = round((4095 - 256) / 16), Gr, Gb, B


def test_measurement_is_step_major_over_cells(key):
    spec = PRESETS["bayer10"]
    mosaic = np.random.default_rng(3).integers(0, 1024, (6, 8, 1)).astype(np.uint16)
    out = readout(mosaic, key, spec, epoch=4)
    cells = spec.cells(mosaic)
    assert out.shape == (3, 4, 4)
    for p in stream(mosaic, key, spec, epoch=4):
        assert tuple(out[p.step // 4, p.step % 4]) == tuple(int(v) for v in cells[p.address // 4, p.address % 4])


@pytest.mark.parametrize(
    "spec, frame, fragment",
    [
        (PRESETS["bayer10"], np.zeros((4, 5), np.uint16), "shape (4, 5, 1); a Bayer mosaic has an even height and width"),
        (PRESETS["bayer10"], np.zeros((3, 4, 1), np.uint16), "crop it to 2x4"),
        (PRESETS["bayer10"], np.zeros((4, 4, 4), np.uint16), "expected a (2H, 2W) or (2H, 2W, 1) RGGB mosaic"),
        (PRESETS["bayer10"], np.zeros((4, 4), np.uint8), "dtype uint8, the spec's 10-bit input expects uint16"),
        (PRESETS["bayer10"], np.full((2, 2), 1024, np.uint16), "code 1024, above the 10-bit input range 0..1023"),
        (PRESETS["bayer12msb"], np.zeros((2, 2), np.uint8), "12-bit input in MSB-aligned 16-bit words expects uint16"),
        (PRESETS["bayer12"], [[1, 2], [3, 4]], "expected a numpy array of shape (2H, 2W) mosaic"),
    ],
)
def test_mosaic_checks_name_expected_and_actual(spec, frame, fragment):
    with pytest.raises(FrameError) as caught:
        spec.check_frame(frame)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"cfa": "RGGB", "channels": 4}, "cfa = 'RGGB' is the Bayer mode of readout spec version 2; set spec_version = 2"),
        ({"input_alignment": "msb", "input_bits": 12}, "input_alignment = 'msb' is new in readout spec version 2"),
        ({"spec_version": 2, "cfa": "RGGB"}, "not channels = 3; set channels = 4"),
        ({"spec_version": 2, "channels": 4, "input_alignment": "msb", "input_bits": 12}, "channels = 4 is the Bayer"),
        ({"spec_version": 2, "input_alignment": "msb", "input_bits": 16}, "needs input_bits below 16"),
        ({"spec_version": 2, "cfa": "rggb", "channels": 4}, "cfa = 'rggb'"),
        ({"spec_version": 2, "cfa": "RGGB", "channels": 4, "input_alignment": "MSB"}, "input_alignment = 'MSB'"),
        ({"spec_version": 3}, "spec_version = 3"),
    ],
)
def test_bad_version_2_fields_are_one_line_errors(data, fragment):
    with pytest.raises(SpecError) as caught:
        spec_from_mapping(data, source="file 'x.toml'")
    assert fragment in str(caught.value) and "file 'x.toml'" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_presets_and_toml_round_trip(tmp_path):
    assert PRESETS["bayer10"] == bayer(input_bits=10, output_bits=10)
    assert PRESETS["bayer12to8"].gain_q16 == GAIN_ONE // 16 and PRESETS["bayer12to8"].output_bits == 8
    assert PRESETS["bayer12msb"].is_msb and PRESETS["bayer12msb"].cfa == "RGGB"
    assert PRESETS["bggr12msb"].cfa == "BGGR" and PRESETS["bggr10"].input_bits == 10
    for name in ("raw10", "raw12"):  # version-1 presets are untouched
        assert PRESETS[name].channels == 1 and PRESETS[name].spec_version == 1 and not PRESETS[name].is_bayer
    text = PRESETS["bayer12msb"].to_toml()
    assert 'cfa = "RGGB"' in text and 'input_alignment = "msb"' in text
    path = tmp_path / "pi5.toml"
    path.write_text(text)
    assert load_spec(path) == PRESETS["bayer12msb"]


def test_version_1_specs_are_written_as_before():
    assert list(PRESETS["raw12"].model_dump()) == ["spec_version", "channels", "input_bits", "output_bits",
                                                   "black_level", "gain_q16"]
    assert "cfa" not in PRESETS["rgb8"].to_toml() and "cfa" not in PRESETS["rgb8"].model_dump_json()
    assert ReadoutSpec.model_validate_json(PRESETS["bayer12"].model_dump_json()) == PRESETS["bayer12"]


def test_describe_shows_the_cfa_and_alignment():
    assert PRESETS["bayer12msb"].describe() == ("Bayer RGGB cells (R, Gr, Gb, B), 12-bit in (MSB of 16-bit words), "
                                                "12-bit out, identity transfer")
    assert PRESETS["bayer12to8"].describe().startswith("Bayer RGGB cells (R, Gr, Gb, B), 12-bit in, 8-bit out, black 0")
    assert PRESETS["raw12"].describe() == "1 ch, 12-bit in, 12-bit out, identity transfer"


def test_pixel_specs_have_no_cells():
    with pytest.raises(SpecError, match="pixel mode"):
        PRESETS["raw12"].mosaic(np.zeros((1, 1, 4), np.uint16))
    with pytest.raises(FrameError, match=r"expected \(H, W, 4\)"):
        PRESETS["bayer12"].mosaic(np.zeros((2, 2, 3), np.uint16))


def test_manifests_record_the_isp_and_old_manifests_still_load():
    isp = IspSpec(black_level=64, wb_gains=[2.0, 1.0, 1.5], ccm=None, gamma=2.2, white=959)
    fields = dict(name="measurement", shape=[None, 4, 4, 4], dtype="uint16", channel_order="rgb",
                  model_channel_order="rgb", mean=[0.0] * 3, std=[1.0] * 3, code_scale=1.0)
    base = dict(key_fingerprint="kc1:0", policy="boundary", epoch=0, plain_sha256="0", layout_salt="0", outputs=[])
    bayer_manifest = Manifest(spec=PRESETS["bayer10"], input=InputSpec(isp=isp, **fields), **base)
    again = Manifest.from_json(bayer_manifest.to_json())
    assert again == bayer_manifest and again.input.isp.gamma == 2.2 and again.spec.cfa == "RGGB"
    pixel = Manifest(spec=PRESETS["rgb8"], input=InputSpec(**{**fields, "shape": [None, 4, 4, 3], "dtype": "uint8"}),
                     **base)
    text = pixel.to_json()
    assert '"isp"' not in text and '"cfa"' not in text  # written exactly as before version 2
    assert Manifest.from_json(text).input.isp is None
    broken = json.loads(bayer_manifest.to_json())
    broken["input"]["isp"]["wb_gains"] = [1.0, 0.0, 1.0]
    with pytest.raises(ModelError, match="not a valid keycam manifest"):
        Manifest.from_json(json.dumps(broken))
