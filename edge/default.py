"""The embedded default's model: keycam's own Fashion-MNIST CNN, keyed for the default job's key.

The frames are the default source's (``edge.sources.default``: the 20 Fashion-MNIST test images that
ship inside the ``foolbox`` package). The model: keycam's own Fashion-MNIST CNN (``edge/assets/fashion_mnist_cnn.onnx``,
trained by ``training/train_fashion_mnist.py``), compiled for the key on first use (that step needs
the ``export`` package and onnx; the result is cached beside the key).
"""

from __future__ import annotations

from pathlib import Path

from firmware_sim.keys import MasterKey
from firmware_sim.spec import PRESETS

ASSET = Path(__file__).with_name("assets") / "fashion_mnist_cnn.onnx"
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN, STD = (72.94,), (90.0,)
SPEC = PRESETS["gray8"]


def load_or_create_key(path: Path) -> MasterKey:
    if path.exists():
        return MasterKey.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = MasterKey.generate()
    key.save(path)
    return key


def default_model(folder: Path, key: MasterKey) -> Path:
    """The default model keyed for ``key`` (compiled once, cached as ``folder/default-<fingerprint>.onnx``)."""
    target = folder / f"default-{key.fingerprint.replace(':', '-')}.onnx"
    if not target.exists():
        from export.keyify import KeyifyOptions, keyify  # the compiler; only needed the first time
        from export.package.save import save

        folder.mkdir(parents=True, exist_ok=True)
        save(keyify(ASSET, key, KeyifyOptions(spec=SPEC, mean=MEAN, std=STD)), target)
    return target
