"""Known-plaintext attack on the sensor layout, and what one measurement leaks (docs/privacy.md).

How many (plain, measurement) pairs recover the sensor layout completely: fraction of positions
recovered for k = 1, 2, 3, 5, 10 pairs, on natural images at 8 bits (CIFAR-10 colour 32x32 and
Fashion-MNIST grey 28x28, real test images; a 128x128 colour crop of a photograph with camera
motion between frames), natural images at 12 bits (the same photograph scaled to 12 bits with
sensor noise of 4 codes: simulated, no 12-bit data ships in a package), and flat frames.

    python benchmarks/attack_known_plaintext.py
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import date
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.lab.attacks.known_plaintext import known_plaintext, recovered_fraction, single_measurement_leakage  # noqa: E402
from edge.lab.datasets import fashion_mnist  # noqa: E402
from edge.lab.demo import shipped_photo  # noqa: E402
from edge.transform import AdcTransform  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from firmware_sim.spec import PRESETS  # noqa: E402
from edge.lab.datasets import foolbox_images  # noqa: E402

PAIRS = (1, 2, 3, 5, 10)


def photo_crops(count: int, size: int = 128) -> list[np.ndarray]:
    photo = cv2.imread(str(shipped_photo()))
    return [np.ascontiguousarray(photo[60 + 3 * i: 60 + 3 * i + size, 100 + 7 * i: 100 + 7 * i + size])
            for i in range(count)]  # a slow pan: the frames overlap, as a camera's do


def cases(rng: np.random.Generator) -> dict:
    crops = photo_crops(10)
    twelve = [np.clip(c.astype(np.int32) * 16 + rng.normal(0, 4, c.shape).round().astype(np.int32), 0, 4095)
              .astype(np.uint16) for c in crops]
    return {
        "CIFAR-10 32x32, 8-bit colour": ([cv2.imread(str(p)) for p, _ in foolbox_images("cifar10")][:10],
                                        PRESETS["rgb8"]),
        "Fashion-MNIST 28x28, 8-bit grey": (list(fashion_mnist("t10k")[0][:10]), PRESETS["gray8"]),
        "photo 128x128, 8-bit colour": (crops, PRESETS["rgb8"]),
        "photo 128x128, 12-bit colour (simulated noise)": (twelve, PRESETS["rgb12"]),
        "flat frames 128x128, 8-bit": ([np.full((128, 128, 3), 17 * i, np.uint8) for i in range(10)],
                                       PRESETS["rgb8"]),
    }


def main() -> int:
    rng = np.random.default_rng(0)
    key = MasterKey.generate()
    print(f"Run on {date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, a fresh random key\n")
    print("| frames | " + " | ".join(f"{k} pair{'s' if k > 1 else ''}" for k in PAIRS) + " |")
    print("|---|" + "---|" * len(PAIRS))
    leaks = []
    for name, (frames, spec) in cases(rng).items():
        transform = AdcTransform(key, spec)
        height, width = frames[0].shape[:2]
        truth = transform.table(height, width)
        measured = [transform(f) for f in frames]
        row = [recovered_fraction(known_plaintext(frames[:k], measured[:k], spec), truth) for k in PAIRS]
        print(f"| {name} | " + " | ".join(f"{v * 100:.1f} %" for v in row) + " |")
        if "flat" not in name:
            leaks.append((name, single_measurement_leakage(frames[0], measured[0], spec)))
    print("\n| one measurement of | mean code, plain | mean code, measurement | histogram distance | SSIM to plain |")
    print("|---|---|---|---|---|")
    for name, leak in leaks:
        print(f"| {name} | {leak.mean_plain:.2f} | {leak.mean_measurement:.2f} | {leak.histogram_distance:.3f} | "
              f"{leak.ssim:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
