"""Train the small Fashion-MNIST CNN that keycam's tests and docs use, and export it to ONNX.

A 28 x 28 grey-scale classifier with a strided convolution and a residual block (what the keyed
compiler must handle: layout constraints at the residual Add, strided gathers), trained on the
60,000 training images of Debian's ``dataset-fashion-mnist`` and exported with ``torch.onnx`` at a
dynamic batch. Input: raw 0..255 codes normalised as (x - 72.94) / 90.0 (the training set's mean and
standard deviation on the 0..255 scale), which is what ``keycam keyify --mean 72.94 --std 90.0`` folds in.

Needs the optional PyTorch extra (``pip install torch==2.13.0``); keycam itself never does.

    python training/train_fashion_mnist.py --epochs 4 --out edge/assets/fashion_mnist_cnn.onnx
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edge.lab.datasets import fashion_mnist  # noqa: E402

MEAN, STD = 72.94, 90.0


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
        )

    def forward(self, x):
        return torch.relu(self.body(x) + x)


def network() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),  # 28 x 28
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),  # 14 x 14
        Residual(32),
        nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),  # 7 x 7
        nn.MaxPool2d(2, ceil_mode=True),  # 4 x 4
        nn.Flatten(), nn.Linear(64 * 4 * 4, 10),  # flatten of a 4 x 4 map: the compiler permutes the weight
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("edge/assets/fashion_mnist_cnn.onnx"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    images, labels = fashion_mnist("train")
    test_images, test_labels = fashion_mnist("t10k")

    def tensor(x: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32)) - MEAN) / STD  # (N,H,W,1)->(N,1,H,W)

    x, y = tensor(images), torch.from_numpy(labels)
    model = network()
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = args.epochs * (len(x) // 128)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=4e-3, total_steps=steps)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x))
        start = time.time()
        for i in range(len(x) // 128):
            batch = order[i * 128:(i + 1) * 128]
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(tensor(test_images[i:i + 1000])).argmax(1) == torch.from_numpy(
                test_labels[i:i + 1000])).sum()) for i in range(0, len(test_images), 1000))
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}, test accuracy {correct / len(test_images):.4f}, "
              f"{time.time() - start:.0f} s")
    example = tensor(test_images[:2])
    torch.onnx.export(model, (example,), str(args.out), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
