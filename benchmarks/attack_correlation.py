"""Ciphertext-only attack: how much of the layout's neighbourhood structure many frames reveal, how well
the picture can be reassembled from it, and how key epochs bound both.

A 64x64 grey "camera" pans slowly across scikit-image's sample photographs (package-shipped), one
frame per step; the eavesdropper sees only measurements under one layout and correlates positions
across frames (``edge.attacks.correlation_neighbours``). Reported, against the number of frames seen
under one layout:

- the fraction of each position's 4 most correlated positions that are true 4-neighbours (chance:
  4 / 4095);
- the picture reassembled from those statistics (``edge.lab.attacks.reassembly.reassemble``: Laplacian
  eigenmap of the correlation graph, dealt onto the grid) and used to un-scramble held-out
  measurements (64x64 crops of photographs the pan never shows, same layout): PSNR and SSIM against
  the true frames, best of the grid's 8 symmetries (the correlation graph cannot tell a picture
  from its mirror image or rotations), averaged over the held-out frames. Baseline: the measurement
  itself taken as the picture (the identity layout guess), scored the same way.

With key epochs of E frames, an eavesdropper is held to the E-frame figure, since every epoch has a
fresh layout (and measurements are tagged with their epoch); the second table shows it for a stream
of 1000 frames, and what pooling all epochs anyway gives.

    python benchmarks/attack_correlation.py
"""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.lab.attacks.known_plaintext import correlation_neighbours, neighbour_precision  # noqa: E402
from edge.lab.attacks.reassembly import reassemble, reconstruction_quality, unscramble  # noqa: E402
from edge.transform import AdcTransform  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from firmware_sim.spec import PRESETS  # noqa: E402

SIZE = 64
FRAMES = (10, 30, 100, 300, 1000, 3000)
HELD_OUT = ("coins", "moon", "motorcycle_left", "page", "hubble_deep_field")  # photographs the pan never shows


def _folder() -> Path:
    return Path(next(iter(importlib.util.find_spec("skimage").submodule_search_locations))) / "data"


@functools.cache
def held_out() -> list[np.ndarray]:
    """(64, 64, 1) centre crops of photographs that are not in the pan."""
    crops = []
    for name in HELD_OUT:
        path = next(_folder().glob(f"{name}.*"))
        photo = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        h, w = photo.shape
        crops.append(photo[(h - SIZE) // 2:(h + SIZE) // 2, (w - SIZE) // 2:(w + SIZE) // 2, np.newaxis])
    return crops


def pan(frames: int) -> np.ndarray:
    """(T, 64, 64, 1) frames of a slow pan across the package's sample photographs."""
    folder = _folder()
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


def quality(transform: AdcTransform, epoch: int, placement: np.ndarray | None):
    """Mean (PSNR, SSIM) of the held-out frames un-scrambled by ``placement`` (None: the measurement as is)."""
    scores = []
    for frame in held_out():
        measurement = transform(frame, epoch)
        estimate = measurement if placement is None else unscramble(measurement, placement)
        q = reconstruction_quality(estimate, frame, 255.0)
        scores.append((q.psnr, q.ssim))
    return np.mean(scores, axis=0)


def main() -> int:
    key = MasterKey.generate()
    transform = AdcTransform(key, PRESETS["gray8"])
    video = pan(max(FRAMES))
    measured = np.stack([transform(f) for f in video]).reshape(len(video), -1)  # (T, N) under one layout
    perm = transform.table(SIZE, SIZE)
    print(f"Run on {date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores; 64x64 grey pan over "
          f"scikit-image's photographs; chance is {4 / (SIZE * SIZE - 1) * 100:.2f} %; PSNR/SSIM: mean over "
          f"{len(HELD_OUT)} held-out frames, best of the 8 symmetries\n")
    print("| frames under one layout (= key epoch length) | true neighbours among the 4 most correlated "
          "| reassembled: PSNR (dB) | SSIM | k | seconds |")
    print("|---|---|---|---|---|---|")
    base = quality(transform, 0, None)
    print(f"| baseline: the measurement as the picture | | {base[0]:.1f} | {base[1]:.2f} | | |")
    for frames in FRAMES:
        predicted = correlation_neighbours(measured[:frames], k=4)
        start = time.perf_counter()
        found = reassemble(measured[:frames], SIZE, SIZE)
        took = time.perf_counter() - start
        p, s = quality(transform, 0, found.placement)
        print(f"| {frames} | {neighbour_precision(predicted, perm, SIZE, SIZE) * 100:.1f} % | {p:.1f} | {s:.2f} "
              f"| {found.k} | {took:.1f} |", flush=True)

    stream = video[:1000]
    print("\nA stream of 1000 frames with the layout rotated every E frames (key epochs); the eavesdropper "
          "attacks the last epoch's layout, from that epoch's frames only or from all 1000 pooled\n")
    print("| epoch length E | frames used | true neighbours among the 4 most correlated "
          "| reassembled: PSNR (dB) | SSIM |")
    print("|---|---|---|---|---|")
    for length in (1000, 100, 10):
        epochs = np.arange(len(stream)) // length
        last = int(epochs[-1])
        rotated = np.stack([transform(f, int(e)) for f, e in zip(stream, epochs)]).reshape(len(stream), -1)
        truth = transform.table(SIZE, SIZE, last)
        for label, rows in (("last epoch only", epochs == last), ("all 1000, pooled", np.ones_like(epochs, bool))):
            if length == 1000 and label != "last epoch only":
                continue
            used = rotated[rows]
            precision = neighbour_precision(correlation_neighbours(used, k=4), truth, SIZE, SIZE)
            p, s = quality(transform, last, reassemble(used, SIZE, SIZE).placement)
            print(f"| {length} | {int(rows.sum())} ({label}) | {precision * 100:.1f} % | {p:.1f} | {s:.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
