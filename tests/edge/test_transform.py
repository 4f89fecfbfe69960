"""The edge ADC transform: inverse, caching, epochs, errors, threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edge.transform import AdcTransform
from firmware_sim.errors import FrameError
from firmware_sim.spec import GAIN_ONE, PRESETS, ReadoutSpec


def _frame(spec: ReadoutSpec, height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, spec.input_max + 1, (height, width, spec.channels)).astype(spec.input_dtype)


PIXEL_PRESETS = {name for name, spec in PRESETS.items() if not spec.is_bayer}  # Bayer presets: below
BAYER_IDENTITY = sorted(name for name, spec in PRESETS.items() if spec.is_bayer and spec.is_identity)


@pytest.mark.parametrize("name", sorted(PIXEL_PRESETS - {"rgb16to12"}))
@pytest.mark.parametrize("size", [(1, 1), (1, 13), (13, 1), (31, 17), (48, 64)])
def test_unscramble_inverts_scramble_for_identity_specs(key, name, size):
    spec = PRESETS[name]
    transform = AdcTransform(key, spec)
    frame = _frame(spec, *size)
    measurement = transform(frame)
    assert measurement.shape == frame.shape and measurement.dtype == spec.output_dtype
    assert np.array_equal(transform.inverse(measurement), frame)
    if size[0] * size[1] > 16:
        assert not np.array_equal(measurement, frame)


@pytest.mark.parametrize("name", BAYER_IDENTITY)
@pytest.mark.parametrize("size", [(1, 1), (1, 13), (13, 1), (31, 17), (48, 64)])
def test_unscramble_gives_the_cells_of_the_mosaic_for_identity_bayer_specs(key, name, size):
    spec = PRESETS[name]
    transform = AdcTransform(key, spec)
    rng = np.random.default_rng(1)
    top = 0xFFFF if spec.is_msb else spec.input_max
    mosaic = rng.integers(0, top + 1, (2 * size[0], 2 * size[1], 1)).astype(spec.input_dtype)
    measurement = transform(mosaic)
    assert measurement.shape == (*size, 4) and measurement.dtype == spec.output_dtype
    cells = transform.inverse(measurement)
    assert np.array_equal(cells, spec.cells(mosaic))  # (H, W, 4) in raster order, codes (R, Gr, Gb, B)
    assert np.array_equal(spec.mosaic(cells), mosaic >> spec.alignment_shift << spec.alignment_shift)
    if size[0] * size[1] > 16:
        assert not np.array_equal(measurement, cells)


def test_bayer_frames_and_measurements_are_validated(key):
    transform = AdcTransform(key, PRESETS["bayer12"])
    with pytest.raises(FrameError, match=r"shape \(4, 4, 3\), expected a \(2H, 2W\) or \(2H, 2W, 1\) RGGB mosaic"):
        transform(np.zeros((4, 4, 3), np.uint16))
    with pytest.raises(FrameError, match="even height and width"):
        transform(np.zeros((4, 5), np.uint16))
    with pytest.raises(FrameError, match="code 4096"):
        transform(np.full((4, 4), 4096, np.uint16))
    with pytest.raises(FrameError, match=r"expected \(H, W, 4\)"):
        transform.inverse(np.zeros((4, 4, 1), np.uint16))


def test_inverse_of_a_non_identity_spec_gives_the_transferred_frame(key):
    spec = ReadoutSpec(input_bits=12, output_bits=10, black_level=50, gain_q16=GAIN_ONE // 3)
    transform = AdcTransform(key, spec)
    frame = _frame(spec, 20, 30)
    assert np.array_equal(transform.inverse(transform(frame)), spec.transfer_table()[frame])


def test_wrong_key_or_wrong_epoch_does_not_restore(key, other_key):
    frame = _frame(PRESETS["rgb8"], 40, 50)
    measurement = AdcTransform(key)(frame, epoch=1)
    assert np.array_equal(AdcTransform(key).inverse(measurement, epoch=1), frame)
    for restored in (AdcTransform(other_key).inverse(measurement, epoch=1), AdcTransform(key).inverse(measurement)):
        assert np.mean(np.all(restored == frame, axis=2)) < 0.05


def test_tables_are_built_once_per_size_and_epoch_and_evicted_lru(key):
    transform = AdcTransform(key, cache_size=2)
    first = transform.table(10, 20)
    assert transform.table(10, 20) is first
    transform.table(10, 20, epoch=1)
    transform.table(10, 20)  # touch: now most recent
    transform.table(20, 10)  # evicts (10, 20, 1)
    assert set(transform._cache) == {(10, 20, 0), (20, 10, 0)}
    assert transform.table(10, 20) is first


def test_frames_are_validated(key):
    transform = AdcTransform(key, PRESETS["rgb10"])
    with pytest.raises(FrameError, match="dtype uint8.*expects uint16"):
        transform(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(FrameError, match="code 2000"):
        transform(np.full((4, 4, 3), 2000, np.uint16))
    with pytest.raises(FrameError, match="measurement has dtype uint8"):
        transform.inverse(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(FrameError, match=r"expected \(H, W, 3\)"):
        transform.inverse(np.zeros((4, 4, 1), np.uint16))


def test_non_contiguous_frames_are_handled(key):
    big = _frame(PRESETS["rgb8"], 40, 60)
    view = big[::2, 1::3]
    transform = AdcTransform(key)
    assert np.array_equal(transform(view), transform(np.ascontiguousarray(view)))


def test_concurrent_use_gives_the_same_answer(key):
    transform = AdcTransform(key)
    frames = [_frame(PRESETS["rgb8"], 32 + i % 3, 48, seed=i) for i in range(24)]
    expected = [AdcTransform(key)(f) for f in frames]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(transform, frames))
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))


def test_repr_shows_fingerprint_only(key):
    text = repr(AdcTransform(key))
    assert key.fingerprint in text and key._secret.hex() not in text


def test_constructor_checks_its_arguments(key):
    with pytest.raises(TypeError):
        AdcTransform(b"\x00" * 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AdcTransform(key, cache_size=0)
