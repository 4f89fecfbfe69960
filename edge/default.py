"""The embedded default's models, keyed for the default job's key on first use and cached beside it.

- The default job's: the trained face detector (BlazeFace, ``edge.faces``: set-up converts it from
  mediapipe's wheel), on the photos that ship inside scikit-image (``edge.sources.default``);
  :func:`default_detector`.
- keycam's own Fashion-MNIST CNN (``edge/assets/fashion_mnist_cnn.onnx``, trained by
  ``training/train_fashion_mnist.py``), for the 20 Fashion-MNIST test images that ship inside
  ``foolbox`` (``kind = "fashion-mnist"``); :func:`default_model`.

Compiling needs the ``export`` package and onnx (only the first time).
"""

from __future__ import annotations

from pathlib import Path

from firmware_sim.keys import MasterKey
from firmware_sim.spec import PRESETS

KEY_FILE = "default.key"  # the default job's key, in its folder (edge.places.default_folder)
ASSET = Path(__file__).with_name("assets") / "fashion_mnist_cnn.onnx"
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN, STD = (72.94,), (90.0,)
SPEC = PRESETS["gray8"]
POLICY = "boundary"  # keyify's default layout policy (`fresh`, the paper's, is chosen explicitly)
DETECTOR_SPEC_NAME = "rgb8-sealed"  # the embedded default reads out sealed (readout spec version 4; edge.seal)


def load_or_create_key(path: Path) -> MasterKey:
    if path.exists():
        return MasterKey.load(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = MasterKey.generate()
    key.save(path)
    return key


def default_model(folder: Path, key: MasterKey) -> Path:
    """The default model keyed for ``key`` (compiled once, cached as ``folder/default-boundary-<fingerprint>.onnx``;
    the policy is in the name, so a ``fresh`` model cached before ``boundary`` became the default is not reused)."""
    target = folder / f"default-{POLICY}-{key.fingerprint.replace(':', '-')}.onnx"
    if not target.exists():
        from export.keyify import KeyifyOptions, keyify  # the compiler; only needed the first time
        from export.package.save import save

        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        save(keyify(ASSET, key, KeyifyOptions(spec=SPEC, mean=MEAN, std=STD, policy=POLICY)), target)
    return target


def default_detector(folder: Path, key: MasterKey) -> Path:
    """The face detector keyed for ``key`` under the sealed readout (``DETECTOR_SPEC``; compiled once, cached as
    ``folder/face-boundary-rgb8-sealed-<fingerprint>.onnx``: the policy and the spec are in the name, so a model
    cached by an earlier keycam or for another spec is not reused)."""
    from edge.faces import LABELS as FACE_LABELS, MEAN as FACE_MEAN, STD as FACE_STD, face_model

    target = folder / f"face-{POLICY}-{DETECTOR_SPEC_NAME}-{key.fingerprint.replace(':', '-')}.onnx"
    if not target.exists():
        from export.keyify import KeyifyOptions, keyify
        from export.package.save import save

        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        options = KeyifyOptions(spec=PRESETS[DETECTOR_SPEC_NAME], mean=FACE_MEAN, std=FACE_STD, policy=POLICY,
                                task="detect", labels=tuple(FACE_LABELS))
        save(keyify(face_model(), key, options), target)
    return target
