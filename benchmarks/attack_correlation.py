"""Ciphertext-only attack: how much of the layout's neighbourhood structure many frames reveal, and how
key epochs bound it.

A 64x64 grey "camera" pans slowly across scikit-image's sample photographs (package-shipped), one
frame per step; the eavesdropper sees only measurements under one layout and correlates positions
across frames (``edge.attacks.correlation_neighbours``). Reported: the fraction of each position's 4
most correlated positions that are true 4-neighbours (chance: 4 / 4095), against the number of
frames seen under one layout; with key epochs of E frames, an eavesdropper is held to the E-frame
figure, since every epoch has a fresh layout (and measurements are tagged with their epoch).

    python benchmarks/attack_correlation.py
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from datetime import date
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.attacks import correlation_neighbours, neighbour_precision  # noqa: E402
from edge.transform import AdcTransform  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from firmware_sim.spec import PRESETS  # noqa: E402

SIZE = 64


def pan(frames: int) -> np.ndarray:
    """(T, 64, 64, 1) frames of a slow pan across the package's sample photographs."""
    folder = Path(next(iter(importlib.util.find_spec("skimage").submodule_search_locations))) / "data"
    photos = [cv2.imread(str(folder / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
              for name in ("astronaut", "coffee", "chelsea", "camera", "brick", "grass", "gravel", "rocket")
              if (folder / f"{name}.png").exists()]
    out = []
    per_photo = max(1, frames // len(photos) + 1)
    for photo in photos:
        h, w = photo.shape
        for t in range(per_photo):
            y = int((h - SIZE) * (0.5 + 0.45 * np.sin(t / 37.0)))
            x = int((w - SIZE) * (0.5 + 0.45 * np.cos(t / 23.0)))
            out.append(photo[y:y + SIZE, x:x + SIZE])
    return np.stack(out[:frames])[..., np.newaxis]


def main() -> int:
    key = MasterKey.generate()
    transform = AdcTransform(key, PRESETS["gray8"])
    video = pan(1000)
    measured = np.stack([transform(f) for f in video]).reshape(len(video), -1)  # (T, N) under one layout
    perm = transform.table(SIZE, SIZE)
    print(f"Run on {date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores; 64x64 grey pan over "
          f"scikit-image's photographs; chance is {4 / (SIZE * SIZE - 1) * 100:.2f} %\n")
    print("| frames under one layout (= key epoch length) | true neighbours among the 4 most correlated |")
    print("|---|---|")
    for frames in (10, 30, 100, 300, 1000):
        predicted = correlation_neighbours(measured[:frames], k=4)
        print(f"| {frames} | {neighbour_precision(predicted, perm, SIZE, SIZE) * 100:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
