"""The known-plaintext attack and single-measurement leakage, run against keycam's own readout."""

from __future__ import annotations

import cv2
import numpy as np

from edge.lab.attacks.known_plaintext import known_plaintext, recovered_fraction, single_measurement_leakage
from edge.transform import AdcTransform
from firmware_sim.spec import PRESETS
from edge.lab.datasets import foolbox_images


def _cifar(count: int) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p, _ in foolbox_images("cifar10")][:count]


def test_a_few_known_natural_images_recover_the_whole_layout(key):
    frames = _cifar(3)
    transform = AdcTransform(key)
    truth = transform.table(32, 32)
    estimates = [known_plaintext(frames[:k], [transform(f) for f in frames[:k]], PRESETS["rgb8"]) for k in (1, 3)]
    assert 0.9 < recovered_fraction(estimates[0], truth) < 1.0  # one image already gives most positions away
    assert recovered_fraction(estimates[1], truth) == 1.0
    for estimate in estimates:  # what the attack claims is always right: a unique signature cannot lie
        found = estimate >= 0
        assert np.array_equal(estimate[found], truth[found])


def test_flat_frames_reveal_nothing_and_the_transfer_is_no_obstacle(key):
    spec = PRESETS["rgb12"]
    flat = [np.full((16, 16, 3), 100 * i, np.uint16) for i in range(5)]
    transform = AdcTransform(key, spec)
    assert recovered_fraction(known_plaintext(flat, [transform(f) for f in flat], spec), transform.table(16, 16)) == 0
    gain = PRESETS["rgb8"].model_copy(update={"black_level": 10, "gain_q16": 80000})  # a public, non-identity transfer
    frames = _cifar(3)
    transform = AdcTransform(key, gain)
    estimate = known_plaintext(frames, [transform(f) for f in frames], gain)
    assert recovered_fraction(estimate, transform.table(32, 32)) > 0.99


def test_one_measurement_keeps_the_histogram_and_hides_the_structure(key):
    frame = _cifar(1)[0]
    leak = single_measurement_leakage(frame, AdcTransform(key)(frame), PRESETS["rgb8"])
    assert leak.histogram_distance == 0.0 and leak.mean_plain == leak.mean_measurement
    assert abs(leak.ssim) < 0.2
    same = single_measurement_leakage(frame, frame, PRESETS["rgb8"])
    assert same.ssim > 0.99


def test_correlating_many_frames_finds_neighbours_and_epochs_cut_the_stream(key):
    """Ciphertext only: a panning camera's positions co-vary with their neighbours; a new epoch starts over."""
    import importlib.util
    from pathlib import Path

    from edge.lab.attacks.known_plaintext import correlation_neighbours, neighbour_precision

    folder = Path(next(iter(importlib.util.find_spec("skimage").submodule_search_locations))) / "data"
    photo = cv2.imread(str(folder / "astronaut.png"), cv2.IMREAD_GRAYSCALE)
    frames = np.stack([photo[100 + t: 132 + t, 150 + 2 * t: 182 + 2 * t] for t in range(150)])[..., None]
    spec = PRESETS["gray8"]
    transform = AdcTransform(key, spec)
    one_layout = np.stack([transform(f, 0) for f in frames]).reshape(len(frames), -1)
    precision = neighbour_precision(correlation_neighbours(one_layout), transform.table(32, 32, 0), 32, 32)
    assert precision > 0.3  # chance is 4 / 1023
    # an eavesdropper who pools frames across an epoch change mixes two layouts: the structure blurs
    mixed = np.concatenate([one_layout[:75], np.stack([transform(f, 1) for f in frames[75:]]).reshape(75, -1)])
    pooled = neighbour_precision(correlation_neighbours(mixed), transform.table(32, 32, 0), 32, 32)
    assert pooled < precision
