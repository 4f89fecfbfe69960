"""Feature inversion at the split: what the task server holds, and an inverter trained from it (tiny budget here;
the measured figures come from benchmarks/feature_inversion.py). Needs PyTorch, as tests/edge/lab/test_finetune.py."""

from __future__ import annotations

import platform

import numpy as np
import onnx
import pytest

from edge.default import ASSET
from edge.errors import LabError
from edge.lab.attacks.camera import Camera
from edge.lab.attacks.inversion import baselines, invert, quality, split_features, task_side_features, train_inverter
from edge.lab.datasets import FASHION_MNIST, fashion_mnist
from export.keyify import KeyifyOptions
from firmware_sim.spec import PRESETS

try:
    import torch  # noqa: F401
except ImportError:
    if platform.machine() == "x86_64":
        raise ImportError("PyTorch is missing, but scripts/setup-venv.sh installs it for the tests on x86_64: "
                          "run scripts/setup-venv.sh test, or pip install torch==2.13.0") from None
    pytest.skip(f"PyTorch is not installed on this {platform.machine()} machine", allow_module_level=True)

pytestmark = pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")


def _form(pictures: np.ndarray) -> np.ndarray:
    return ((pictures.astype(np.float32) - 72.94) / 90.0).transpose(0, 3, 1, 2)


@pytest.fixture(scope="module")
def pictures():
    return fashion_mnist("train")[0][:256], fashion_mnist("t10k")[0][:64]


@pytest.mark.parametrize("preset", ["gray8", "gray8-sealed"])
def test_a_boundary_task_server_holds_the_plain_networks_features_in_natural_order(shared_models, key, pictures,
                                                                                      preset):
    """Sealed or not: the seal is opened before the feature model, and features cross unsealed."""
    _, test = pictures
    options = KeyifyOptions(policy="boundary", mean=(72.94,), std=(90.0,), spec=PRESETS[preset], split_after="/5/Relu")
    result = shared_models.keyified(ASSET, key, options)
    camera = Camera(key, PRESETS[preset])
    measured = camera.stream(test)
    if camera.sealed:
        measured = np.stack([camera.open(m, i) for i, m in enumerate(measured)])  # the device opens, then runs
    expected = split_features(onnx.load(ASSET), "/5/Relu", _form(test))
    held = task_side_features(result.feature, result.task, measured, expected.shape[1:])
    assert np.allclose(held, expected, atol=1e-4)


def test_the_inverter_trains_and_is_scored_against_uninformed_guesses(pictures):
    train, test = pictures
    train_labels, test_labels = fashion_mnist("train")[1][:256], fashion_mnist("t10k")[1][:64]
    model = onnx.load(ASSET)
    module = train_inverter(split_features(model, "/9/Relu", _form(train)), train, epochs=1, batch=64)
    estimates = invert(module, split_features(model, "/9/Relu", _form(test)))
    assert estimates.shape == test.shape and estimates.dtype == np.uint8
    score = quality(estimates, test)
    assert np.isfinite(score.psnr) and -1.0 <= score.ssim <= 1.0
    guesses = baselines(train, test, labels=(train_labels, test_labels))
    assert set(guesses) == {"scrambled picture", "mean picture", "class-mean picture"}
    assert guesses["scrambled picture"].ssim < 0.05 < guesses["mean picture"].ssim
    assert guesses["class-mean picture"].ssim > guesses["mean picture"].ssim + 0.1  # the class tells the shape
    with pytest.raises(LabError, match="no training picture"):
        baselines(train, test, labels=(np.zeros(len(train), int), np.ones(len(test), int)))
    vector = train_inverter(split_features(model, "logits", _form(train)), train, epochs=1, batch=64)  # (N, 10)
    assert invert(vector, split_features(model, "logits", _form(test[:4]))).shape == (4, 28, 28, 1)


@pytest.mark.slow
def test_features_after_the_first_layer_give_the_picture_back(pictures):
    """A split right after the first convolution hands the task server the picture (a few minutes on 2 cores)."""
    train = fashion_mnist("train")[0][:3000]
    _, test = pictures
    model = onnx.load(ASSET)
    module = train_inverter(split_features(model, "/2/Relu", _form(train)), train, epochs=3)
    score = quality(invert(module, split_features(model, "/2/Relu", _form(test))), test)
    assert score.psnr > baselines(train, test)["mean picture"].psnr + 8 and score.ssim > 0.65  # measured: 21 dB, 0.78
