"""The key-independent attacker on code statistics: it reads the paper's measurements, not sealed ones."""

from __future__ import annotations

import numpy as np
import pytest

from edge.lab.attacks.camera import Camera
from edge.lab.attacks.statistics import StatisticsClassifier, chance, code_statistics, public_statistics, uniformity
from edge.lab.datasets import FASHION_MNIST, fashion_mnist
from firmware_sim.spec import PRESETS

pytestmark = pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
RUN = bytes(range(16))  # a fixed sensor run: the test's ciphertext is the same on every run


@pytest.fixture(scope="module")
def data():
    train, train_labels = fashion_mnist("train")
    test, labels = fashion_mnist("t10k")
    return train[:2000], train_labels[:2000], test[:400], labels[:400]


@pytest.fixture(scope="module")
def attacker(data):
    train, train_labels, _, _ = data
    return StatisticsClassifier(hidden=64, epochs=25, learning_rate=3e-3).fit(
        public_statistics(train, PRESETS["gray8"]), train_labels)


def test_a_measurement_has_its_pictures_statistics_exactly_whatever_the_key(data, key, other_key):
    _, _, test, _ = data
    plain = public_statistics(test[:50], PRESETS["gray8"])
    for k in (key, other_key):
        assert np.array_equal(code_statistics(Camera(k, PRESETS["gray8"]).stream(test[:50])), plain)


def test_trained_on_public_pictures_it_labels_the_papers_measurements_and_not_sealed_ones(data, attacker, key):
    _, _, test, labels = data
    paper = attacker.accuracy(code_statistics(Camera(key, PRESETS["gray8"]).stream(test)), labels)
    sealed = attacker.accuracy(code_statistics(Camera(key, PRESETS["gray8-sealed"], RUN).stream(test)), labels)
    assert chance(labels) < 0.15
    assert paper > 0.35  # no key, no camera, never a measurement: 4x chance on 400 frames
    assert sealed < 0.2  # chance (a binomial 10 % +- 1.5 % on 400 frames; one class answered for all gives its share)


def test_trained_on_labelled_sealed_measurements_it_is_still_at_chance(data, key):
    train, train_labels, test, labels = data
    camera = Camera(key, PRESETS["gray8-sealed"], RUN)
    own = StatisticsClassifier(hidden=64, epochs=25, learning_rate=3e-3).fit(
        code_statistics(camera.stream(train[:1000])), train_labels[:1000])
    assert own.accuracy(code_statistics(camera.stream(test)), labels) < 0.2


def test_sealed_codes_are_uniform_bytes_and_a_genuine_seal(data, key):
    _, _, test, _ = data
    camera = Camera(key, PRESETS["gray8-sealed"], RUN)
    sealed = camera.stream(test[:300])
    assert uniformity(sealed)[1] > 1e-3  # chi-square against uniform: not rejected
    assert uniformity(Camera(key, PRESETS["gray8"]).stream(test[:300]))[1] < 1e-12  # the paper's: far from uniform
    opened = camera.open(sealed[7], 7)  # the key holder opens it: the paper's measurement of the same frame
    assert np.array_equal(opened, camera.transform(test[7]))
