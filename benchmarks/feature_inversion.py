"""Feature inversion at the split: what a task server can rebuild of the picture from the features it receives.

For each split depth, the plain network's features of public training pictures train an inverter (a small
decoder, ``edge.lab.attacks.inversion``, PyTorch) back to the pictures; it is then applied to what a real
``boundary`` task server holds for test pictures it never saw: the keyed feature model run on the camera's
measurements, put back in natural order by the task model's own first gather (the script checks that this
equals the plain network's features). PSNR and SSIM against the true test pictures (mean +- spread over the
pictures), beside two uninformed guesses: the picture with its positions scrambled (a measurement taken as a
picture), the training pictures' mean and, for Fashion-MNIST, the mean training picture of the true class (what
the class alone gives).

- Fashion-MNIST (Debian's dataset-fashion-mnist) through keycam's own CNN (edge/assets/fashion_mnist_cnn.onnx):
  training pictures from the 60,000 training images, test pictures the first of the 10,000 test images.
- Colour: the Keras CIFAR-10 CNN of ``cifar-10-model`` (export/zoo/keras_cifar.py), 32x32 RGB. Training pictures:
  CIFAR-like crops of scikit-image's colour photographs (random squares of 32-192 pixels, resized to 32x32,
  mirrored at random); test pictures it never saw: foolbox's 20 CIFAR-10, 20 CIFAR-100 and 20 ImageNet images
  (resized to 32x32) and 40 crops of a photograph left out of training (chelsea).

    python benchmarks/feature_inversion.py [--only fashion,colour] [--pictures 8000] [--epochs 4] [--threads 2]

(docs/privacy.md's figures: ``--only fashion --pictures 4000 --epochs 3 --test 500 --threads 1`` and
``--only colour --pictures 3000 --epochs 3 --threads 1``, on two CPU cores shared with other work.)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.lab.attacks.camera import Camera  # noqa: E402
from edge.lab.attacks.inversion import (baselines, invert, quality, split_features, task_side_features,  # noqa: E402
                                        tensor_of, train_inverter)
from edge.lab.datasets import fashion_mnist, foolbox_images  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from firmware_sim.spec import PRESETS  # noqa: E402

FASHION_MODEL = ROOT / "edge" / "assets" / "fashion_mnist_cnn.onnx"
FASHION_DEPTHS = ("/2/Relu", "/5/Relu", "/9/Relu", "/10/MaxPool", "logits")
COLOUR_DEPTHS = ("batch_normalization", "max_pooling2d", "max_pooling2d_1", "max_pooling2d_2", "dense_2.relu")
TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "motorcycle_left", "hubble_deep_field", "ihc", "retina")
KEY = MasterKey(bytes(range(32)))  # a public test key: the features a task server gets do not depend on it


def _photo(name: str) -> np.ndarray:
    folder = Path(next(iter(importlib.util.find_spec("skimage").submodule_search_locations))) / "data"
    return cv2.imread(str(next(folder.glob(f"{name}.*"))))[:, :, ::-1]  # RGB


def crops(names, count: int, seed: int) -> np.ndarray:
    """(count, 32, 32, 3) RGB CIFAR-like crops: random squares of 32-192 pixels, resized, mirrored at random."""
    rng = np.random.default_rng(seed)
    photos = [_photo(n) for n in names]
    out = []
    for _ in range(count):
        photo = photos[rng.integers(len(photos))]
        side = int(rng.integers(32, min(193, *photo.shape[:2])))
        y, x = rng.integers(0, photo.shape[0] - side + 1), rng.integers(0, photo.shape[1] - side + 1)
        patch = cv2.resize(photo[y:y + side, x:x + side], (32, 32), interpolation=cv2.INTER_AREA)
        out.append(patch[:, ::-1] if rng.random() < 0.5 else patch)
    return np.stack(out)


def colour_test() -> np.ndarray:
    images = [cv2.imread(str(p))[:, :, ::-1] for d in ("cifar10", "cifar100", "imagenet") for p, _ in foolbox_images(d)]
    sized = [cv2.resize(i, (32, 32), interpolation=cv2.INTER_AREA) if i.shape[0] != 32 else i for i in images]
    return np.concatenate([np.stack(sized), crops(["chelsea"], 40, seed=99)])


def fashion_form(pictures: np.ndarray) -> np.ndarray:
    return ((pictures.astype(np.float32) - 72.94) / 90.0).transpose(0, 3, 1, 2)


def colour_form(pictures: np.ndarray) -> np.ndarray:
    return pictures.astype(np.float32).transpose(0, 3, 1, 2)  # the Keras CNN takes raw 0..255 RGB


def _task_side(plain, depth, test, form, spec, options, expected):
    """(what a boundary task server holds for ``test``, max difference from the plain features, or None)."""
    from export.errors import UnsupportedModel
    from export.keyify import KeyifyOptions, keyify

    if expected.ndim != 4 or expected.shape[2] * expected.shape[3] == 1:
        return expected, None  # a vector: it crosses as it is (nothing left to put in order)
    try:
        result = keyify(plain, KEY, KeyifyOptions(policy="boundary", spec=spec, split_after=depth, **options))
    except UnsupportedModel as error:
        print(f"  ({depth}: {error})", file=sys.stderr)
        return expected, None
    measured = Camera(KEY, spec).stream(test)
    held = task_side_features(result.feature, result.task, measured, expected.shape[1:])
    return held, float(np.abs(held - expected).max())


def _progress(depth: str, start: float):
    return lambda epoch, loss: print(f"  {depth} epoch {epoch + 1}: loss {loss:.4f}, "
                                     f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


def table(name, plain, train, test, form, spec, options, depths, epochs, labels=None) -> None:
    print(f"\n### {name}: {len(train)} training pictures, {epochs} epochs per depth, {len(test)} test pictures\n")
    print("| split after | features (C x H x W) | values per picture value | task side = plain features "
          "(max difference) | PSNR (dB) | SSIM | training s |")
    print("|---|---|---|---|---|---|---|")
    for label, score in baselines(train, test, labels=labels).items():
        print(f"| guess: {label} | | | | {score.psnr:.1f} +- {score.psnr_std:.1f} "
              f"| {score.ssim:.3f} +- {score.ssim_std:.3f} | |", flush=True)
    for depth in depths:
        start = time.perf_counter()
        features = split_features(plain, depth, form(train))
        expected = split_features(plain, depth, form(test))
        held, difference = _task_side(plain, depth, test, form, spec, options, expected)
        module = train_inverter(features, train, epochs, progress=_progress(depth, start))
        score = quality(invert(module, held), test)
        shape = " x ".join(str(d) for d in features.shape[1:])
        print(f"| {depth} (`{tensor_of(plain, depth)}`) | {shape} | {features[0].size / train[0].size:.2f} "
              f"| {'n/a (crosses as it is)' if difference is None else f'{difference:.1e}'} "
              f"| {score.psnr:.1f} +- {score.psnr_std:.1f} | {score.ssim:.3f} +- {score.ssim_std:.3f} "
              f"| {time.perf_counter() - start:.0f} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="fashion,colour")
    parser.add_argument("--pictures", type=int, default=8000, help="training pictures per set")
    parser.add_argument("--epochs", type=int, default=4, help="inverter training epochs per depth")
    parser.add_argument("--test", type=int, default=1000, help="Fashion-MNIST test pictures")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"Run on {date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, {args.threads} PyTorch "
          f"threads, load {open('/proc/loadavg').read().split()[0]}")
    wanted = args.only.split(",")
    if "fashion" in wanted:
        (train, train_labels), (test, test_labels) = fashion_mnist("train"), fashion_mnist("t10k")
        train, train_labels = train[:args.pictures], train_labels[:args.pictures]
        test, test_labels = test[:args.test], test_labels[:args.test]
        table("Fashion-MNIST, keycam's CNN", onnx.load(FASHION_MODEL), train, test, fashion_form, PRESETS["gray8"],
              dict(mean=(72.94,), std=(90.0,)), FASHION_DEPTHS, args.epochs, labels=(train_labels, test_labels))
    if "colour" in wanted:
        from export.zoo.keras_cifar import convert

        table("Colour 32x32, the Keras CIFAR-10 CNN", convert(), crops(TRAIN_PHOTOS, args.pictures, seed=0),
              colour_test(), colour_form, PRESETS["rgb8"], {}, COLOUR_DEPTHS, args.epochs)
    print(f"\n(load at the end {open('/proc/loadavg').read().split()[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
