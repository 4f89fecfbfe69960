"""Real trained models, no retraining: keyed with the key == plain on every image; a wrong key at chance.

- the Keras CIFAR-10 CNN shipped in ``cifar-10-model`` (converted by export/zoo/keras_cifar.py),
  on foolbox's 20 real CIFAR-10 test images;
- our Fashion-MNIST CNN (training/train_fashion_mnist.py, exported by torch.onnx, committed in
  models/), on all 10,000 test images of Debian's dataset-fashion-mnist.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from edge.lab.datasets import fashion_mnist
from edge.lab.evaluate import paper_table
from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from firmware_sim.keys import MasterKey
from firmware_sim.spec import PRESETS
from export.zoo.keras_cifar import convert
from edge.lab.datasets import foolbox_images

ROOT = Path(__file__).resolve().parents[2]
FASHION_MODEL = ROOT / "edge" / "assets" / "fashion_mnist_cnn.onnx"
WRONG = [MasterKey(hashlib.sha256(f"wrong key {i}".encode()).digest()) for i in range(5)]


def _compile(tmp_path, plain: onnx.ModelProto, key, options: KeyifyOptions) -> tuple[Path, Path]:
    plain_path = tmp_path / "plain.onnx"
    onnx.save(plain, plain_path)
    keyed_path = tmp_path / f"keyed-{options.policy}.onnx"
    save(keyify(plain, key, options), keyed_path)
    return plain_path, keyed_path


@pytest.mark.parametrize("policy", ["fresh", "boundary"])
def test_keras_cifar10_cnn_on_real_cifar10_images(tmp_path, key, policy):
    images = foolbox_images("cifar10")
    frames = np.stack([cv2.imread(str(p))[:, :, ::-1] for p, _ in images])  # RGB sensor frames, 0..255
    labels = np.array([label for _, label in images])
    plain, keyed = _compile(tmp_path, convert(), key, KeyifyOptions(policy=policy))
    table = paper_table(plain, keyed, key, frames, labels, wrong_keys=WRONG)
    assert table.images == 20
    assert table.plain_on_plain == 1.0  # the shipped model gets all 20 right
    assert table.keyed_agreement == 1.0 and table.keyed_with_key == table.plain_on_plain
    assert table.plain_on_scrambled <= 0.3
    assert table.wrong_key_mean <= 0.3  # chance is 0.1; 20 images leave room for noise


@pytest.mark.parametrize("policy", ["fresh", "boundary"])
def test_fashion_mnist_cnn_on_all_10000_test_images(tmp_path, key, policy):
    frames, labels = fashion_mnist("t10k")
    plain = onnx.load(FASHION_MODEL)
    options = KeyifyOptions(policy=policy, mean=(72.94,), std=(90.0,), spec=PRESETS["gray8"])
    plain_path, keyed_path = _compile(tmp_path, plain, key, options)
    table = paper_table(plain_path, keyed_path, key, frames, labels, wrong_keys=WRONG[:3], batch=1000)
    assert table.images == 10_000
    assert table.plain_on_plain > 0.9
    assert table.keyed_agreement == 1.0  # the same prediction as the plain model on every one of 10,000 images
    assert table.keyed_with_key == table.plain_on_plain
    assert table.plain_on_scrambled < 0.3
    assert abs(table.wrong_key_mean - 0.1) < 0.1
