"""The proof: keyed-int8 equals plain-int8, bit for bit, when both are calibrated on the same frames.

The plain model is quantised by onnxruntime on the plain frames as it takes them (normalised, its own
layout); the keyed model (``boundary``) on their measurements, with the plain model's first layer given
(``export/quantize/unfold.py``). Then, on frames neither saw, every output value is equal (``==``, not a
tolerance). Real models: keycam's Fashion-MNIST CNN and the Keras CIFAR-10 CNN of ``cifar-10-model``
(trained); ResNet-18 and MobileNetV2 at 224 (``export.zoo``, random weights: exactness needs no training);
YOLOv8n at 320 as ultralytics exports it, and the trained BlazeFace face detector at 128, whose detections
after NMS are then the same too.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest

from edge.default import ASSET, MEAN, SPEC, STD
from edge.lab.datasets import fashion_mnist
from export.keyify import KeyifyOptions
from export.zoo import NETWORKS
from export.quantize import quantize_file, quantize_plain
from edge.lab.verify import plain_input
from tests.export.quantize.helpers import compile_model, foolbox_files, int8_pair, run_keyed, run_plain


def _bitwise(plain8: np.ndarray, keyed8: np.ndarray) -> None:
    assert plain8.shape == keyed8.shape and plain8.dtype == keyed8.dtype == np.float32
    assert np.array_equal(plain8, keyed8), f"{int(np.sum(plain8 != keyed8))} of {plain8.size} values differ"


def test_fashion_mnist_cnn_int8_keyed_equals_int8_plain_bit_for_bit(tmp_path, key):
    train, _ = fashion_mnist("train")
    test, _ = fashion_mnist("t10k")
    model = compile_model(tmp_path, onnx.load(ASSET), key, KeyifyOptions(spec=SPEC, mean=MEAN, std=STD))
    assert model.manifest.policy == "boundary"  # the default
    plain8, keyed8 = int8_pair(model, model.sensor_frames(list(train[:200])), model.sensor_frames(list(test[:2000])))
    _bitwise(plain8, keyed8)


def test_keras_cifar10_cnn_int8_keyed_equals_int8_plain_bit_for_bit(tmp_path, key):
    from export.zoo.keras_cifar import convert

    pictures = [cv2.imread(str(p))[:, :, ::-1] for p in foolbox_files("cifar10")]  # RGB sensor frames, 0..255
    model = compile_model(tmp_path, convert(), key, KeyifyOptions())
    frames = model.sensor_frames(pictures, "rgb")
    noise = np.random.default_rng(0).integers(0, 256, (8, *frames.shape[1:]), np.uint8)
    plain8, keyed8 = int8_pair(model, frames[:10], np.concatenate([frames, noise]))
    _bitwise(plain8, keyed8)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_imagenet_networks_int8_keyed_equal_int8_plain_bit_for_bit(tmp_path, key, name):
    build, _, mean, std = NETWORKS[name]
    pictures = [cv2.imread(str(p)) for p in foolbox_files("imagenet")]  # 512x512 photos, fitted to 224
    model = compile_model(tmp_path, build(), key, KeyifyOptions(mean=mean, std=std, channel_order="bgr"))
    frames = model.sensor_frames(pictures)
    plain8, keyed8 = int8_pair(model, frames[:8], frames)
    _bitwise(plain8, keyed8)


def test_without_the_plain_model_the_folded_first_layer_rounds_differently_but_agrees(tmp_path, key):
    """What ``--plain`` is for: the compiler's folded first layer (``1/std`` in the weights) is quantised as
    another layer, so the int8 outputs are close to the plain int8 model's, not equal."""
    build, _, mean, std = NETWORKS["resnet18"]
    pictures = [cv2.imread(str(p)) for p in foolbox_files("imagenet")]
    model = compile_model(tmp_path, build(), key, KeyifyOptions(mean=mean, std=std, channel_order="bgr"))
    frames = model.sensor_frames(pictures)
    plain8, keyed8 = int8_pair(model, frames[:8], frames, plain=False)
    assert not np.array_equal(plain8, keyed8)
    assert np.array_equal(plain8.argmax(1), keyed8.argmax(1))
    assert np.max(np.abs(plain8 - keyed8)) < 0.05 * np.max(np.abs(plain8))


def _detections(outputs: list[np.ndarray], manifest, settings) -> list[dict]:
    from edge.tasks import Geometry, make_decoder

    _, height, width, _ = manifest.input.shape
    return make_decoder(settings, manifest).decode(outputs, Geometry.of(width, height, None))["detections"]


def _detector_frames(model) -> np.ndarray:
    from edge.lab.demo import shipped_photo

    pictures = [cv2.imread(str(p)) for p in foolbox_files("imagenet")]
    pictures += [cv2.imread(str(shipped_photo(name)), cv2.IMREAD_COLOR) for name in SKIMAGE]
    return model.sensor_frames(pictures)


SKIMAGE = ("astronaut", "camera", "chelsea", "coffee", "motorcycle_left")


def test_yolov8n_int8_keyed_equals_int8_plain_bit_for_bit_and_so_do_its_detections(tmp_path, key, request):
    """YOLOv8n as ultralytics exports it (320x320, batch 1, random weights made to detect: export/zoo/yolo.py),
    the session's shared export (tests/export/detection.py's ``yolo``)."""
    from edge.tasks import TaskConfig
    from export.zoo.yolo import available

    if not available():
        pytest.skip("needs ultralytics and PyTorch (the test extra) for the YOLOv8n export fixture")
    path = request.getfixturevalue("yolo")((320, 320), False)  # asked for here: skipped above without ultralytics
    model = compile_model(tmp_path, onnx.load(path), key, KeyifyOptions(mean=(0.0,), std=(255.0,),
                                                                        channel_order="bgr"))
    frames = _detector_frames(model)
    plain8, keyed8 = int8_pair(model, frames[:12], frames, batch=1)
    _bitwise(plain8, keyed8)
    settings = TaskConfig(kind="detect", decoder="yolo", score_threshold=0.5)
    found = 0
    for i in range(len(frames)):
        plain, keyed = (_detections([out[i:i + 1]], model.manifest, settings) for out in (plain8, keyed8))
        assert plain == keyed
        found += len(plain)
    assert found > 0  # NMS had boxes to choose from


def test_blazeface_int8_keyed_equals_int8_plain_bit_for_bit_and_so_do_its_faces(tmp_path, key):
    """The trained BlazeFace face detector (mediapipe's, converted at set-up: edge/faces.py)."""
    from edge.errors import ModelError
    from edge.faces import MEAN, SPEC, STD, face_model, task_settings

    try:
        detector = face_model()
    except ModelError as error:
        pytest.skip(str(error))
    model = compile_model(tmp_path, onnx.load(detector), key, KeyifyOptions(spec=SPEC, mean=MEAN, std=STD,
                                                                            channel_order="bgr"))
    frames = _detector_frames(model)
    onnx.save(quantize_plain(model.plain, plain_input(frames[:12], model.manifest)), tmp_path / "plain.int8.onnx")
    quantize_file(model.keyed, model.measure(frames[:12]), tmp_path / "keyed.int8.onnx", calibration="photos",
                  plain=model.plain)
    plain = run_plain(tmp_path / "plain.int8.onnx", frames, model.manifest, batch=1, every=True)
    keyed = run_keyed(tmp_path / "keyed.int8.onnx", model, model.measure(frames), batch=1, every=True)
    assert [o.shape for o in plain] == [(len(frames), 896, 16), (len(frames), 896, 1)]
    for p, k in zip(plain, keyed):
        _bitwise(p, k)
    faces = 0
    for i in range(len(frames)):
        detections = _detections([o[i:i + 1] for o in plain], model.manifest, task_settings())
        assert detections == _detections([o[i:i + 1] for o in keyed], model.manifest, task_settings())
        faces += len(detections)
    assert faces >= 1  # the astronaut's face, at least
