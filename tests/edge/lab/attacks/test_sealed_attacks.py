"""Known plaintext and the correlation attack, side by side: they break the paper's readout and not the sealed one
(the figures over many keys: benchmarks/attacks_sealed.py, docs/privacy.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from edge.lab.attacks.camera import Camera, paired_specs
from edge.lab.attacks.known_plaintext import (correlation_neighbours, known_plaintext, neighbour_precision,
                                              recovered_fraction)
from edge.lab.attacks.reassembly import reassemble, reconstruction_quality, unscramble
from edge.lab.datasets import foolbox_images
from firmware_sim.spec import PRESETS

RUN = bytes(range(16))
SIDE = 24  # the correlation test's sensor: small, so that the reassembly takes seconds  # a fixed sensor run: the ciphertext is the same on every run of the test


def _pan(frames: int, side: int = 32) -> np.ndarray:
    """(T, side, side, 1) views of a camera panning over the astronaut photograph."""
    folder = Path(next(iter(importlib.util.find_spec("skimage").submodule_search_locations))) / "data"
    photo = cv2.imread(str(folder / "astronaut.png"), cv2.IMREAD_GRAYSCALE)
    return np.stack([photo[100 + t: 100 + side + t, 150 + 2 * t: 150 + side + 2 * t] for t in range(frames)])[..., None]


def test_the_sealed_twin_of_a_preset_is_its_order_sealed(key):
    paper, sealed = paired_specs("gray8")
    assert (paper, sealed) == ("gray8", "gray8-sealed") and PRESETS[sealed].is_sealed and not PRESETS[paper].is_sealed
    frame = _pan(1)[0]
    camera = Camera(key, PRESETS[sealed], RUN)
    ciphertext = camera.read(frame)
    assert ciphertext.shape == frame.shape and ciphertext.dtype == frame.dtype
    assert np.array_equal(camera.order(32, 32), Camera(key, PRESETS[paper]).order(32, 32))  # the same order
    assert np.array_equal(camera.open(ciphertext, 0), Camera(key, PRESETS[paper]).read(frame))  # sealed, not changed
    assert not np.array_equal(camera.read(frame), ciphertext)  # the same scene seals differently: a new nonce


def test_known_plaintext_gives_the_papers_order_away_and_nothing_of_the_sealed_one(key):
    frames = [cv2.imread(str(p)) for p, _ in foolbox_images("cifar10")][:3]
    found = {}
    for name in paired_specs("rgb8"):
        camera = Camera(key, PRESETS[name], RUN)
        estimate = known_plaintext(frames, list(camera.stream(np.stack(frames))), PRESETS[name])
        found[name] = recovered_fraction(estimate, camera.order(32, 32))
    assert found["rgb8"] == 1.0  # three natural pictures: the whole order
    assert found["rgb8-sealed"] < 0.01  # chance is 1 / 1024 of the positions


def test_correlating_a_sealed_stream_finds_no_neighbours_and_no_picture(key):
    frames = _pan(150, SIDE)
    held_out = _pan(161, SIDE)[-1]  # a view the eavesdropper never saw (frame 160 of the pan)
    precision, pictures = {}, {}
    for name in paired_specs("gray8"):
        camera = Camera(key, PRESETS[name], RUN)
        stream = camera.stream(frames).reshape(len(frames), -1)
        truth = Camera(key, PRESETS["gray8"]).order(SIDE, SIDE)
        precision[name] = neighbour_precision(correlation_neighbours(stream), truth, SIDE, SIDE)
        placement = reassemble(stream, SIDE, SIDE, ks=(8,)).placement
        seen = camera.read(held_out)  # what the eavesdropper holds of the unseen view
        pictures[name] = reconstruction_quality(unscramble(seen, placement), held_out, 255.0)
    assert precision["gray8"] > 0.3  # chance is 4 / 575
    assert precision["gray8-sealed"] < 0.03  # a few times chance at most, against 0.9
    assert pictures["gray8"].ssim > 0.3 > 0.1 > pictures["gray8-sealed"].ssim
