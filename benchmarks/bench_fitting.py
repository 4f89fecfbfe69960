"""What a model's framing costs the readout stage: crop (keycam's rule) against letterbox (ultralytics') and stretch.

The readout stage (``edge.sensor.Readout.read``: fit the camera frame to the model, then the keyed readout) is
timed on real frames of opencv-doc's vtest.avi (768 x 576, people walking) and on a 16:9 frame (the same video,
resized to 1920 x 1080 as a full-HD camera gives it), into 320 x 320 and 640 x 640 RGB models, the three
framings interleaved in one run (median of ``--reps`` repetitions, each in a shuffled order). The ratio column
is letterbox / crop and stretch / crop, in the same run.

Run: python benchmarks/bench_fitting.py [--reps 300]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.frame import Frame  # noqa: E402
from edge.sensor import Readout  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from firmware_sim.spec import PRESETS  # noqa: E402

VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
FITS = ("crop", "letterbox", "stretch")


def frames(count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(VIDEO))
    found = []
    while len(found) < count:
        ok, image = capture.read()
        if not ok:
            break
        found.append(image)
    capture.release()
    if not found:
        sys.exit(f"{VIDEO} is missing: apt-get install opencv-doc")
    return found


def median_ms(readouts: dict[str, Readout], pictures: list[np.ndarray], reps: int) -> dict[str, float]:
    times: dict[str, list[float]] = {fit: [] for fit in readouts}
    order = list(readouts)
    shuffle = random.Random(0).shuffle
    for rep in range(reps):
        shuffle(order)
        picture = pictures[rep % len(pictures)]
        for fit in order:
            start = time.perf_counter()
            readouts[fit].read(Frame(picture, rep, rep, "bench"))
            times[fit].append(time.perf_counter() - start)
    return {fit: statistics.median(t) * 1e3 for fit, t in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=300)
    args = parser.parse_args()
    key = MasterKey.generate()
    video = frames(30)
    cases = [("vtest.avi 768x576", video), ("16:9 1920x1080", [cv2.resize(f, (1920, 1080)) for f in video])]
    print(f"Run on {date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, median of {args.reps} "
          f"interleaved repetitions\n")
    print("| camera frame | model | crop ms | letterbox ms | stretch ms | letterbox / crop | stretch / crop |")
    print("|---|---|---|---|---|---|---|")
    for name, pictures in cases:
        for size in (320, 640):
            readouts = {fit: Readout(key, PRESETS["rgb8"], size, size, sensor_order="rgb", source_order="bgr",
                                     fit=fit, pad=114) for fit in FITS}
            for readout in readouts.values():  # warm: tables built, caches full
                readout.read(Frame(pictures[0], 0, 0, "warm"))
            ms = median_ms(readouts, pictures, args.reps)
            print(f"| {name} | {size}x{size} | {ms['crop']:.3f} | {ms['letterbox']:.3f} | {ms['stretch']:.3f} | "
                  f"{ms['letterbox'] / ms['crop']:.2f} | {ms['stretch'] / ms['crop']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
