"""The streaming readout model."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_sim.errors import FrameError
from firmware_sim.permutation import KeyedPermutation
from firmware_sim.readout import readout, stream
from firmware_sim.spec import GAIN_ONE, PRESETS, ReadoutSpec


def test_stream_visits_every_position_once_in_key_order(key):
    frame = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    pixels = list(stream(frame, key))
    assert [p.step for p in pixels] == list(range(35))
    addresses = [p.address for p in pixels]
    assert sorted(addresses) == list(range(35))
    reference = KeyedPermutation(key.sensor_key(5, 7, 0), 35)
    assert addresses == [reference.forward(q) for q in range(35)]
    for p in pixels:  # channels travel together, in the order delivered
        row, col = divmod(p.address, 7)
        assert p.codes == tuple(int(v) for v in frame[row, col])


def test_measurement_layout_is_step_major(key):
    spec = ReadoutSpec(black_level=10, gain_q16=GAIN_ONE * 2)
    frame = np.arange(3 * 4 * 3, dtype=np.uint8).reshape(3, 4, 3) * 7
    out = readout(frame, key, spec, epoch=9)
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    for p in stream(frame, key, spec, epoch=9):
        row, col = divmod(p.address, 4)
        assert tuple(out[p.step // 4, p.step % 4]) == tuple(spec.transfer(int(v)) for v in frame[row, col])


def test_epochs_change_the_order(key):
    frame = np.arange(64, dtype=np.uint8).reshape(8, 8, 1)
    spec = PRESETS["gray8"]
    orders = {tuple(p.address for p in stream(frame, key, spec, epoch=e)) for e in range(4)}
    assert len(orders) == 4


def test_out_of_range_codes_are_refused(key):
    frame = np.full((2, 2, 1), 4096, np.uint16)
    with pytest.raises(FrameError, match="4096"):
        readout(frame, key, PRESETS["raw12"])


def test_sixteen_bit_output_words(key):
    spec = ReadoutSpec(channels=1, input_bits=16, output_bits=12, gain_q16=GAIN_ONE // 16)
    frame = np.array([[0, 65535, 8, 7]], dtype=np.uint16)
    out = readout(frame, key, spec)
    assert out.dtype == np.uint16 and sorted(out.ravel().tolist()) == [0, 0, 1, 4095]


def test_a_privacy_mask_covers_whole_bayer_cells_and_reads_code_zero(key):
    """Readout spec version 3: a masked position (a whole 2x2 cell of a mosaic) reads input code 0 for all four
    photosites; a mask of the wrong shape or type is refused in one line."""
    spec = PRESETS["bayer10"]
    mosaic = np.full((4, 6, 1), 700, np.uint16)  # 2 x 3 cells
    mask = np.array([[True, False, False], [False, False, True]])
    measured = readout(mosaic, key, spec, mask=mask)
    order = [pixel.address for pixel in stream(mosaic, key, spec, mask=mask)]
    for step, address in enumerate(order):
        row, col = divmod(address, 3)
        codes = measured.reshape(-1, 4)[step]
        assert codes.tolist() == ([0] * 4 if mask[row, col] else [700] * 4)
    for bad in (mask.T, mask.astype(np.uint8), [[True] * 3] * 2):
        with pytest.raises(FrameError, match=r"privacy mask has shape .* expected \(2, 3\) bool"):
            readout(mosaic, key, spec, mask=bad)
