"""Conformance of the Bayer mode (readout spec version 2): the edge transform equals firmware_sim byte for byte,
for every CFA phase, LSB- and MSB-aligned input, any transfer and size, and random codes with the edge values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import transform as transform_module
from edge.imageio import read_frame
from edge.lab.demo import shipped_photo
from edge.sensor import simulate_cfa
from edge.transform import AdcTransform
from firmware_sim.cfa import PHASES
from firmware_sim.keys import MasterKey
from firmware_sim.readout import readout
from firmware_sim.spec import PRESETS, ReadoutSpec


def _same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@st.composite
def bayer_specs(draw):
    alignment = draw(st.sampled_from(["lsb", "msb"]))
    input_bits = draw(st.sampled_from([8, 10, 12] if alignment == "msb" else [8, 10, 12, 16]))
    return ReadoutSpec(
        spec_version=2, cfa=draw(st.sampled_from(PHASES)), channels=4, input_alignment=alignment,
        input_bits=input_bits, output_bits=draw(st.sampled_from([8, 10, 12])),
        black_level=draw(st.integers(0, (1 << input_bits) - 1) | st.just(0)),
        gain_q16=draw(st.integers(0, 2**32 - 1) | st.sampled_from([65536, 4096, 1 << 20])),
    )


def _mosaic(spec: ReadoutSpec, height: int, width: int, seed: int) -> np.ndarray:
    """Random input words for H x W cells, with 0 and the largest word at random photosites."""
    rng = np.random.default_rng(seed)  # test data only; the readout never uses numpy's generators
    top = 0xFFFF if spec.is_msb else spec.input_max
    mosaic = rng.integers(0, top + 1, (2 * height, 2 * width)).astype(spec.input_dtype)
    flat = mosaic.reshape(-1)
    picks = rng.choice(flat.size, size=min(4, flat.size), replace=False)
    flat[picks[: len(picks) // 2]] = 0
    flat[picks[len(picks) // 2:]] = top
    return mosaic


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=bayer_specs(), secret=st.binary(min_size=32, max_size=32), height=st.integers(1, 12),
       width=st.integers(1, 12), epoch=st.integers(0, 2**64 - 1), seed=st.integers(0, 2**32 - 1),
       with_axis=st.booleans())
def test_edge_equals_firmware_sim_on_bayer_mosaics(spec, secret, height, width, epoch, seed, with_axis):
    key = MasterKey(secret)
    mosaic = _mosaic(spec, height, width, seed)
    if with_axis:
        mosaic = mosaic[:, :, np.newaxis]  # (2H, 2W) or (2H, 2W, 1): both are mosaics
    got = AdcTransform(key, spec)(mosaic, epoch)
    assert got.shape == (height, width, 4) and got.dtype == spec.output_dtype
    assert _same_bytes(got, readout(mosaic, key, spec, epoch))


@pytest.mark.parametrize("cfa", PHASES)
@pytest.mark.parametrize("alignment", ["lsb", "msb"])
@pytest.mark.parametrize("size", [(1, 1), (1, 9), (9, 1), (7, 12), (24, 17)])
def test_every_phase_alignment_and_size(key, cfa, alignment, size):
    for transfer in ({}, {"black_level": 64, "gain_q16": 3 * 65536 // 2}, {"output_bits": 8, "gain_q16": 4096}):
        fields = {"input_bits": 12, "output_bits": 12, **transfer}
        spec = ReadoutSpec(spec_version=2, cfa=cfa, channels=4, input_alignment=alignment, **fields)
        mosaic = _mosaic(spec, *size, seed=size[0] * 31 + size[1])
        assert _same_bytes(AdcTransform(key, spec)(mosaic, 5), readout(mosaic, key, spec, 5)), transfer


@pytest.mark.parametrize("name", ["bayer10", "bayer12", "bayer12to8", "bayer12msb", "bggr10msb"])
def test_inverse_gives_the_cells_in_raster_order(key, name):
    spec = PRESETS[name]
    mosaic = _mosaic(spec, 6, 9, seed=2)
    transform = AdcTransform(key, spec)
    cells = transform.inverse(transform(mosaic, 3), 3)
    assert cells.shape == (6, 9, 4)
    assert np.array_equal(cells, spec.transfer_table()[spec.cells(mosaic)])


def test_the_np_take_path_past_remap_limits_is_exact_for_cells(key, monkeypatch):
    spec = PRESETS["bayer12msb"]
    mosaic = _mosaic(spec, 3, 700, seed=5)
    monkeypatch.setattr(transform_module, "_REMAP_LIMIT", 500)  # force the fallback gather
    fallback = AdcTransform(key, spec)
    assert fallback._tables(3, 700, 0).forward_map is None
    assert _same_bytes(fallback(mosaic), readout(mosaic, key, spec))


def test_a_real_photo_through_a_simulated_cfa(key):
    photo = read_frame(shipped_photo())[40:140, 100:250]  # a 100 x 150 crop of chelsea, B,G,R
    for name in ("bayer12to8", "bggr10msb"):
        spec = PRESETS[name]
        mosaic = simulate_cfa(photo, spec.cfa).astype(spec.input_dtype) << (spec.input_bits - 8 + spec.alignment_shift)
        assert _same_bytes(AdcTransform(key, spec)(mosaic, 1), readout(mosaic, key, spec, 1))


@pytest.mark.parametrize("channels, cfa", [(4, "GRBG"), (1, "none"), (3, "none")])
def test_8_bit_codes_in_msb_words_come_out_as_bytes(key, channels, cfa):
    """Identity transfer of 8-bit codes held in 16-bit words: the shift alone, the output uint8."""
    spec = ReadoutSpec(spec_version=2, cfa=cfa, channels=channels, input_alignment="msb")
    shape = (6, 8, 1) if cfa != "none" else (3, 4, channels)
    words = np.random.default_rng(0).integers(0, 1 << 16, shape).astype(np.uint16)
    got = AdcTransform(key, spec)(words, 2)
    assert got.dtype == np.uint8 and _same_bytes(got, readout(words, key, spec, 2))
