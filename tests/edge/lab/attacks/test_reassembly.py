"""Ciphertext only: reassembling the picture from a stream of measurements, run against keycam's own readout."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.errors import LabError
from edge.lab.attacks.reassembly import reassemble, reconstruction_quality, symmetries, unscramble
from edge.transform import AdcTransform
from firmware_sim.spec import PRESETS

SIDE = 20


def _scene() -> np.ndarray:
    """A smooth random 8-bit scene, 300 x 300 (blurred noise stretched to the full code range)."""
    field = cv2.GaussianBlur(np.random.default_rng(1).standard_normal((300, 300)), (0, 0), 4)
    return ((field - field.min()) / np.ptp(field) * 255).astype(np.uint8)


def _camera(scene: np.ndarray, frames: int, seed: int) -> np.ndarray:
    """(T, 20, 20, 1) views of a camera wandering over the scene (a random walk of 4-pixel steps)."""
    steps = np.random.default_rng(seed).integers(-4, 5, size=(frames, 2))
    path = np.clip(140 + np.cumsum(steps, axis=0), 0, scene.shape[0] - SIDE)
    return np.stack([scene[y:y + SIDE, x:x + SIDE] for y, x in path])[..., np.newaxis]


def test_the_true_layout_unscrambles_exactly_and_mirror_images_count_as_found(key):
    frame = _camera(_scene(), 1, 0)[0]
    transform = AdcTransform(key, PRESETS["gray8"])
    measurement = transform(frame)
    table = transform.table(SIDE, SIDE)  # physical q holds logical table[q]: the right placement
    assert np.array_equal(unscramble(measurement, table), frame)
    rows, cols = np.divmod(table, SIDE)
    mirrored = rows * SIDE + (SIDE - 1 - cols)  # the same layout seen in a mirror
    found = reconstruction_quality(unscramble(measurement, mirrored), frame, 255.0)
    assert found.psnr == float("inf") and found.ssim == pytest.approx(1.0) and found.symmetry != 0
    assert len(symmetries(frame)) == 8 and len(symmetries(frame[:10])) == 4


def test_a_long_stream_gives_the_picture_back_a_short_one_and_another_epoch_do_not(key):
    scene = _scene()
    transform = AdcTransform(key, PRESETS["gray8"])
    held_out = _camera(scene, 1, 99)[0]  # a view the eavesdropper never saw, same layout
    measurement = transform(held_out, 0)
    baseline = reconstruction_quality(measurement, held_out, 255.0)  # the measurement taken as the picture

    def attack(frames: int):
        stream = np.stack([transform(f, 0) for f in _camera(scene, frames, frames)]).reshape(frames, -1)  # (T, N)
        return reassemble(stream, SIDE, SIDE).placement

    long = reconstruction_quality(unscramble(measurement, attack(300)), held_out, 255.0)
    short = reconstruction_quality(unscramble(measurement, attack(3)), held_out, 255.0)
    assert long.psnr > baseline.psnr + 6.0 and long.ssim > 0.7  # the picture is back
    assert short.psnr < baseline.psnr + 3.0 and short.ssim < 0.5  # three frames are not enough
    # the next key epoch has a fresh layout: what was learnt about epoch 0 un-scrambles nothing of epoch 1
    next_epoch = reconstruction_quality(unscramble(transform(held_out, 1), attack(300)), held_out, 255.0)
    assert next_epoch.psnr < baseline.psnr + 2.0 and next_epoch.ssim < 0.4


def test_reassemble_names_what_is_wrong_with_its_input():
    with pytest.raises(LabError, match=r"not \(T, 4 \* 4\)"):
        reassemble(np.zeros((10, 15)), 4, 4)
    with pytest.raises(LabError, match="at least 2 frames"):
        reassemble(np.zeros((1, 16)), 4, 4)
