"""What the latency benchmarks share: an onnxruntime session as they all open it, and interleaved timing.

Interleaving (one run of each model in turn, repeated) spreads whatever else the machine does over every
model alike, so the ratios within one row stay fair when the absolute times drift. The turn order is shuffled
every repetition (seeded): a model run right after a large one finds the caches full of the other model's
weights, and a fixed order would hand that cost to the same model every time (measured on 2026-12-01: an int8
MobileNetV2 took 4.6-6.7 % longer right after its float model than right after itself).
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

import onnxruntime as ort


def session(path: Path, threads: int) -> ort.InferenceSession:
    """ORT_ENABLE_ALL, ``threads`` intra-op threads, one inter-op thread, warnings off."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def interleaved(runs: dict[str, tuple[ort.InferenceSession, dict]], reps: int, warm: int = 3,
                seed: int = 0) -> dict[str, float]:
    """Median milliseconds of each ``{label: (session, feed)}``, timed in interleaved repetitions, each in a
    shuffled order."""
    for sess, feed in runs.values():
        for _ in range(warm):
            sess.run(None, feed)
    times: dict[str, list[float]] = {label: [] for label in runs}
    order = list(runs)
    shuffle = random.Random(seed).shuffle
    for _ in range(reps):
        shuffle(order)
        for label in order:
            sess, feed = runs[label]
            start = time.perf_counter()
            sess.run(None, feed)
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(t) * 1e3 for label, t in times.items()}
