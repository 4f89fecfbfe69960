"""Fine-tuning on labelled measurements, side by side: it learns the paper's measurements, not sealed ones.
Needs PyTorch (as tests/edge/lab/test_finetune.py); slow (about a minute on two shared cores)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.default import ASSET
from edge.lab.attacks.camera import Camera, paired_specs
from edge.lab.datasets import FASHION_MNIST, fashion_mnist
from firmware_sim.spec import PRESETS

pytest.importorskip("torch")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")]


def _form(measurements: np.ndarray) -> np.ndarray:
    return ((measurements.astype(np.float32) - 72.94) / 90.0).transpose(0, 3, 1, 2)


def test_labelled_measurements_teach_the_papers_readout_and_sealed_ones_teach_nothing(key):
    from edge.lab.attacks.finetune import finetune, predict

    train, train_labels = fashion_mnist("train")
    test, labels = fashion_mnist("t10k")
    train, train_labels, test, labels = train[:2000], train_labels[:2000], test[:500], labels[:500]
    accuracy = {}
    for name in paired_specs("gray8"):
        camera = Camera(key, PRESETS[name], bytes(16))
        module = finetune(ASSET, _form(camera.stream(train)), train_labels, epochs=1, seed=0)
        accuracy[name] = float(np.mean(predict(module, _form(camera.stream(test))) == labels))
    assert accuracy["gray8"] > 0.4  # the benchmark: 74.6 % from 5,000 measurements, 2 epochs
    assert accuracy["gray8-sealed"] < 0.2  # chance: 10 %
