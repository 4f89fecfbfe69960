"""Benchmark: the edge ADC transform against a bare ``np.take`` of the same frame.

For each frame size and spec, in one run, interleaved repetition by repetition:

- ``take``: ``np.take(frame.reshape(N, C), perm, axis=0)`` with a precomputed permutation
  (the natural bare gather; no validation, no transfer);
- ``take-flat``: ``np.take(frame.ravel(), flat_index)`` with a precomputed N*C index
  (the fastest bare numpy gather we found, reported so the baseline is not a straw man);
- ``keycam``: ``AdcTransform(key, spec)(frame)`` with its index table cached: spec checks,
  the transfer, the keyed gather.

Reports medians and the ratio keycam / take (target <= 2), with OpenCV on all cores and
pinned to one thread, and the one-time cost of building the index table per size.

    python benchmarks/bench_transform.py [--reps 60] [--markdown]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import sys
import time
from datetime import date

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from edge.transform import AdcTransform  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from firmware_sim.spec import GAIN_ONE, ReadoutSpec  # noqa: E402

SIZES = [(480, 640), (1080, 1920)]
SPECS = {
    "rgb8 identity": ReadoutSpec(),
    "rgb12->8 black 64 gain 1/16": ReadoutSpec(input_bits=12, output_bits=8, black_level=64, gain_q16=GAIN_ONE // 16),
}


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def bench_case(key: MasterKey, spec: ReadoutSpec, height: int, width: int, reps: int) -> dict:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, spec.input_max + 1, (height, width, spec.channels)).astype(spec.input_dtype)
    n, c = height * width, spec.channels
    transform = AdcTransform(key, spec)
    perm = transform.table(height, width).copy()
    flat = (perm[:, None] * c + np.arange(c)).reshape(-1)  # (N, C) -> (N*C,) element indices
    rows = frame.reshape(n, c)  # (H, W, C) -> (N, C)
    runs = {
        "take": lambda: np.take(rows, perm, axis=0),
        "take-flat": lambda: np.take(frame.reshape(-1), flat),
        "keycam": lambda: transform(frame),
    }
    for run in runs.values():  # warm up
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(reps):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: _median_ms(samples) for name, samples in times.items()}


def bench_table(key: MasterKey, height: int, width: int, reps: int = 5) -> float:
    samples = []
    for epoch in range(reps):
        transform = AdcTransform(key)
        start = time.perf_counter()
        transform.prepare(height, width, epoch)
        samples.append(time.perf_counter() - start)
    return _median_ms(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=60)
    args = parser.parse_args()
    key = MasterKey(hashlib.sha256(b"benchmark key").digest())
    print(f"# keycam ADC transform benchmark, {date.today().isoformat()}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, OpenCV {cv2.__version__}; median of {args.reps} interleaved repetitions\n"
    )
    print("| frame | spec | OpenCV threads | np.take (ms) | np.take flat (ms) | keycam (ms) | keycam / np.take |")
    print("|---|---|---|---|---|---|---|")
    default_threads = cv2.getNumThreads()
    for height, width in SIZES:
        for name, spec in SPECS.items():
            for threads in (default_threads, 1):
                cv2.setNumThreads(threads)
                r = bench_case(key, spec, height, width, args.reps)
                print(
                    f"| {width}x{height} | {name} | {threads} | {r['take']:.2f} | {r['take-flat']:.2f} | "
                    f"{r['keycam']:.2f} | {r['keycam'] / r['take']:.2f} |"
                )
    cv2.setNumThreads(default_threads)
    print("\n| frame | index table build, once per (key, size, epoch) (ms) |")
    print("|---|---|")
    for height, width in SIZES:
        print(f"| {width}x{height} | {bench_table(key, height, width):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
