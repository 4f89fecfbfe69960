"""The paper's table (Perez, Lopez and Arguello, ICASSP 2024, table 1) for keycam's real models.

Rows: plain model on plain images; plain model on scrambled images; keyed model with the key; keyed
model with wrong keys (mean and spread over 5 random keys); with ``--finetune-epochs N`` (needs
PyTorch), the plain model fine-tuned for N epochs on the 60,000 Fashion-MNIST training images, measured
with the key, and scored on the measurements of the 10,000 test images (``edge.lab.attacks.finetune``; the row
does not depend on the layout policy, so it is computed once, under `fresh`). Foolbox's 20 CIFAR-10
images are too few to fine-tune on, so the CIFAR tables have no such row. Models: the Keras CIFAR-10
CNN from ``cifar-10-model`` on foolbox's 20 CIFAR-10 test images, and our Fashion-MNIST CNN on all
10,000 test images. Prints markdown (used in docs/privacy.md).

    python benchmarks/paper_table.py [--finetune-epochs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.lab.datasets import fashion_mnist  # noqa: E402
from edge.lab.evaluate import paper_table  # noqa: E402
from export.keyify import KeyifyOptions, keyify  # noqa: E402
from export.package.save import save  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from firmware_sim.spec import PRESETS  # noqa: E402
from export.zoo.keras_cifar import convert  # noqa: E402
from edge.lab.datasets import foolbox_images  # noqa: E402


FASHION_MODEL = ROOT / "edge" / "assets" / "fashion_mnist_cnn.onnx"


def finetuner(epochs: int):
    from edge.lab.attacks.finetune import finetune, predict

    def run(inputs, labels):
        module = finetune(FASHION_MODEL, inputs, labels, epochs,
                          progress=lambda e, loss: print(f"epoch {e + 1}: loss {loss:.3f}", file=sys.stderr))
        return lambda x: predict(module, x)

    return run


def table(name: str, plain: onnx.ModelProto, frames, labels, options: KeyifyOptions, folder: Path,
          finetune=None) -> None:
    key = MasterKey.generate()
    plain_path = folder / f"{name}.onnx"
    onnx.save(plain, plain_path)
    print(f"\n### {name}, {len(labels)} images, `{options.policy}` layouts\n")
    print("| | top-1 accuracy |")
    print("|---|---|")
    keyed_path = folder / f"{name}-{options.policy}.onnx"
    save(keyify(plain, key, options), keyed_path)
    result = paper_table(plain_path, keyed_path, key, frames, labels, wrong_keys=5, batch=1000, finetune=finetune)
    for row, value in result.rows():
        print(f"| {row} | {value} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--finetune-epochs", type=int, default=0, help="add the fine-tuned row (needs PyTorch)")
    args = parser.parse_args()
    print(f"Run on {date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        images = foolbox_images("cifar10")
        frames = np.stack([cv2.imread(str(p))[:, :, ::-1] for p, _ in images])
        labels = np.array([label for _, label in images])
        fm_frames, fm_labels = fashion_mnist("t10k")
        fm_model = onnx.load(FASHION_MODEL)
        train = fashion_mnist("train") if args.finetune_epochs else None
        for policy in ("fresh", "boundary"):
            table("cifar10-keras-cnn", convert(), frames, labels, KeyifyOptions(policy=policy), folder)
            tune = (*train, finetuner(args.finetune_epochs), f"{args.finetune_epochs} epoch{'s' * (args.finetune_epochs != 1)}") \
                if train is not None and policy == "fresh" else None
            table("fashion-mnist-cnn", fm_model, fm_frames, fm_labels,
                  KeyifyOptions(policy=policy, mean=(72.94,), std=(90.0,), spec=PRESETS["gray8"]), folder, tune)
    return 0


if __name__ == "__main__":
    sys.exit(main())
