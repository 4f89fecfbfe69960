"""Models as TensorFlow's exporters write them (tests/fixtures/make_tf_exported.py): Keras CNNs converted by
tf2onnx from the Keras model (tf_*.onnx) and through the TFLite converter then ``tf2onnx.convert --tflite``
(tflite_*.onnx), with TensorFlow 2.15.1 / Keras 2 / tf2onnx 1.16.1 and TensorFlow 2.19.1 / Keras 3 / tf2onnx 1.17.0
(*_keras3_*). Channels-last (N, 32, 32, 3) input, dynamic batch (``unk__``), a Transpose to NCHW after a
channels-last Rescaling/Normalization prefix, GlobalAveragePool then Squeeze, squeeze-and-excitation gates
(a 1x1 map reshaped, or a vector reshaped to (N, C, 1, 1)), Keras Flatten (Transpose to
channels-last, Reshape with a constant or run-time shape, MatMul), Keras 3's UpSampling2D as Unsqueeze/Tile/
Reshape, a channels-last dense output.

keyed(scramble(x)) against plain(x) with onnxruntime, both policies, on foolbox's 20 real CIFAR-10 images
and 4 random frames: relative max abs diff <= 1e-4 and the same top-1 (per pixel for the segmenter).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from export.keyify import KeyifyOptions, keyify
from export.prepare.graph import prepare
from tests.export.helpers import TOLERANCE, frames, relative_error, restore, scramble, session
from edge.lab.datasets import foolbox_images

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODELS = [f"{exporter}_{keras}{net}.onnx" for net in ("classifier", "flatten", "segmenter", "blocks")
          for exporter in ("tf", "tflite") for keras in ("", "keras3_")]
# the classifier takes (x - mean) / std, which keyify folds into its first Conv; the others normalise inside
NORMALISE = {"classifier": dict(mean=(125.0, 122.0, 113.0), std=(63.0, 62.0, 66.0))}


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    real = np.stack([cv2.imread(str(p))[:, :, ::-1] for p, _ in foolbox_images("cifar10")])  # (20, 32, 32, 3) RGB
    return np.concatenate([real, frames(4, 32, 32, 3, seed=7)])


def plain_nhwc(batch: np.ndarray, options: KeyifyOptions) -> np.ndarray:
    """(N, H, W, C) codes -> the Keras model's own (N, H, W, C) float input."""
    x = batch.astype(np.float32)
    if options.mean is not None:
        x = x - np.asarray(options.mean, np.float32)
    if options.std is not None:
        x = x / np.asarray(options.std, np.float32)
    return x


@pytest.mark.parametrize("policy", ["fresh", "boundary"])
@pytest.mark.parametrize("name", MODELS)
def test_tensorflow_exported_models(key, batch, name, policy):
    plain = onnx.load(FIXTURES / name)
    assert [d.dim_value for d in plain.graph.input[0].type.tensor_type.shape.dim][1:] == [32, 32, 3]
    options = KeyifyOptions(policy=policy, **NORMALISE.get(name[:-5].split("_")[-1], {}))
    keyed = keyify(plain, key, options)
    assert keyed.stats["plain_input_layout"] == "nhwc"
    assert keyed.manifest.input.shape == [None, 32, 32, 3]

    want = session(plain, optimise=False).run(None, {plain.graph.input[0].name: plain_nhwc(batch, options)})
    got = session(keyed.model).run(None, {"measurement": scramble(batch, key, options)})
    assert len(got) == len(want) == 1
    spec, w, g = keyed.manifest.outputs[0], want[0], got[0]
    if spec.kind == "dense":
        assert spec.form == "channels-last" and g.shape == w.shape == (len(batch), 32, 32, 4)
        assert not np.allclose(g, w, atol=1e-3)  # the mask leaves scrambled
        g = restore(g, spec, key)
    assert g.shape == w.shape
    error = relative_error(g, w)
    assert error <= TOLERANCE, f"{name} {policy}: relative max abs diff {error:.3g}"
    assert np.unique(w.argmax(axis=-1)).size >= 3  # the plain model's answers vary: agreement means something
    assert np.array_equal(g.argmax(axis=-1), w.argmax(axis=-1))  # top-1 (per pixel for the segmenter)
    if policy == "fresh":
        ops = [n.op_type for n in keyed.model.graph.node]
        # every spatial layer keyed; Keras 3's Unsqueeze/Tile up-sampling became a keyed nearest gather
        assert not set(ops) & {"MaxPool", "AveragePool", "Resize", "ConvTranspose", "Tile", "Unsqueeze"}
        graph = prepare(plain)  # the only plain Convs left are 1x1 convs on pooled (N, C, 1, 1) gates
        assert ops.count("Conv") <= sum(n.op_type == "Conv" and graph.shape(n.input[0])[2:] == (1, 1)
                                        for n in graph.nodes)


@pytest.mark.parametrize("name", ["tf_classifier.onnx", "tflite_keras3_flatten.onnx"])
def test_keycam_verify_feeds_channels_last_plain_models_their_own_layout(key, tmp_path, name):
    from edge.lab.verify import verify
    from export.package.save import save

    options = KeyifyOptions(**NORMALISE.get(name[:-5].split("_")[-1], {}))
    result = keyify(onnx.load(FIXTURES / name), key, options)
    assert result.manifest.input.plain_layout == "nhwc"
    save(result, tmp_path / "keyed.onnx")
    report = verify(FIXTURES / name, tmp_path / "keyed.onnx", key, [p for p, _ in foolbox_images("cifar10")])
    assert report.images == 20 and report.exact, report
