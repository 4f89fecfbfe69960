"""A stolen keyed model without the key: it unscrambles the paper's measurements exactly, and no sealed one."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edge.default import ASSET
from edge.errors import LabError
from edge.lab.attacks.camera import Camera
from edge.lab.attacks.inversion import quality
from edge.lab.attacks.stolen_model import stolen_order, unscramble
from edge.lab.datasets import FASHION_MNIST, fashion_mnist
from export.keyify import KeyifyOptions
from firmware_sim.spec import PRESETS

pytestmark = pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")


@pytest.fixture(scope="module")
def test_set():
    frames, labels = fashion_mnist("t10k")
    return frames[:300], labels[:300]


def _keyed(shared_models, key, policy: str, preset: str) -> onnx.ModelProto:
    options = KeyifyOptions(policy=policy, mean=(72.94,), std=(90.0,), spec=PRESETS[preset])
    return shared_models.keyified(ASSET, key, options).model


def _accuracy(model: onnx.ModelProto, measurements: np.ndarray, labels: np.ndarray) -> float:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return float(np.mean(session.run(None, {session.get_inputs()[0].name: measurements})[0].argmax(axis=1) == labels))


@pytest.mark.parametrize("policy", ["boundary", "fresh"])
def test_the_model_file_unscrambles_the_papers_measurements_exactly(shared_models, key, test_set, policy):
    frames, _ = test_set
    camera = Camera(key, PRESETS["gray8"])
    inverse = stolen_order(_keyed(shared_models, key, policy, "gray8"))  # the model alone: no key, no plaintext
    assert np.array_equal(inverse, np.argsort(camera.order(28, 28)))
    assert np.array_equal(unscramble(camera.stream(frames), inverse), frames)


def test_against_the_sealed_readout_it_gives_the_order_and_nothing_else(shared_models, key, test_set):
    frames, labels = test_set
    model = _keyed(shared_models, key, "boundary", "gray8-sealed")
    camera = Camera(key, PRESETS["gray8-sealed"], bytes(16))
    inverse = stolen_order(model)
    assert np.array_equal(inverse, np.argsort(camera.order(28, 28)))  # the order, exactly
    sealed = camera.stream(frames)
    back = unscramble(sealed, inverse)
    assert not any(np.array_equal(b, f) for b, f in zip(back, frames))
    seen, baseline = quality(back[:50], frames[:50]), quality(sealed[:50], frames[:50])
    assert seen.ssim < 0.05 and abs(seen.psnr - baseline.psnr) < 1.0  # ordered noise is noise
    assert _accuracy(model, sealed, labels) < 0.2  # the stolen model on what travels: chance
    opened = np.stack([camera.open(s, i) for i, s in enumerate(sealed)])
    assert _accuracy(model, opened, labels) > 0.85  # the key holder's opened frames: the model's own accuracy


def test_a_plain_model_has_no_order_to_give():
    with pytest.raises(LabError, match="not a keyed model"):
        stolen_order(onnx.load(ASSET))
