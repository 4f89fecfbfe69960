"""Benchmark: a lower bound on `fresh`/plain latency with onnxruntime's stock operators, per network.

Under `fresh` no feature map is ever in natural order, so a spatial layer cannot hand its input to a
native Conv: it must gather, for every output position and every kernel tap, the input row that
the tap reads (an im2col of channels-last rows, ``Gather(x, table)`` with x of shape
(N, H*W+1, C) and a table of H_out*W_out*kh*kw rows; the extra row is the zero padding). That
gather is pure data movement the plain network never does, and its cost alone bounds the keyed
model from below, whatever the arithmetic after it costs::

    fresh / plain >= (T_plain + sum over spatial layers of T_gather(layer)) / T_plain

Each layer's gather is timed alone in onnxruntime (random table, the layer's own sizes, batch 1, one
thread, median of many runs), as is the plain model (ORT_ENABLE_ALL, same settings). The same
figure for the smallest possible data movement, one row per output position (a permutation, not an
im2col, which a `fresh` layer could use only if its input were in natural order), shows how much of
the bound is the im2col's nine-fold size. The last columns do the same for `boundary`, whose only
extra data movement is one row gather of the input frame (H*W rows of C codes).

The tables are random, as a key's are (a fresh layout sends neighbouring taps to unrelated rows), so
the figure is the floor that data movement alone sets, measured, not a proof: a keyed model's
measured ratio can sit a few per cent either side of it.

    python benchmarks/bench_fresh_bound.py [--nets resnet18,resnet20,vgg16_bn,mobilenet_v2] [--reps 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from export.prepare.probe import every_tensor_session  # noqa: E402
from export.zoo import NETWORKS  # noqa: E402


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _median_us(session: ort.InferenceSession, feed: dict, reps: int) -> float:
    for _ in range(10):
        session.run(None, feed)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def _gather_us(rows_in: int, channels: int, rows_out: int, reps: int, rng) -> float:
    table = rng.integers(0, rows_in + 1, rows_out).astype(np.int32)
    graph = helper.make_graph([helper.make_node("Gather", ["x", "t"], ["y"], axis=1)], "gather",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, rows_in + 1, channels])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(table, "t")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.standard_normal((1, rows_in + 1, channels)).astype(np.float32)
    return _median_us(_session(model), {"x": x}, reps)


def bound(model: onnx.ModelProto, reps: int) -> dict:
    rng = np.random.default_rng(0)
    session, names = every_tensor_session(model)
    feed_info = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in feed_info.shape]
    x = rng.standard_normal(shape).astype(np.float32)
    shapes = dict(zip(names, (np.shape(v) for v in session.run(names, {feed_info.name: x}))))
    shapes[feed_info.name] = tuple(shape)
    weights = {i.name: tuple(i.dims) for i in model.graph.initializer}
    im2col = minimal = 0.0
    layers = 0
    _, c, h, w = shapes[feed_info.name]
    boundary = _gather_us(h * w, c, h * w, reps, rng)  # `boundary`'s one gather: the input's rows, in order
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        kh, kw = weights[node.input[1]][2:]
        if kh * kw == 1 and all(a.name != "strides" or set(a.ints) == {1} for a in node.attribute):
            continue  # a 1x1 stride-1 conv is a Gemm on rows in any order: no gather under either policy
        _, c, h, w = shapes[node.input[0]]
        _, _, ho, wo = shapes[node.output[0]]
        im2col += _gather_us(h * w, c, ho * wo * kh * kw, reps, rng)
        minimal += _gather_us(h * w, c, ho * wo, reps, rng)
        layers += 1
    plain = _median_us(_session(model), {feed_info.name: x}, reps)
    return {"layers": layers, "plain_us": plain, "im2col_us": im2col, "minimal_us": minimal, "boundary_us": boundary}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", default="resnet18,resnet20,vgg16_bn,mobilenet_v2")
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args()
    print(f"# lower bound on fresh/plain, {date.today()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"onnxruntime {ort.__version__}, batch 1, 1 thread, median of {args.reps}")
    print("| network | spatial layers | plain (ms) | im2col gathers (ms) | floor fresh/plain | "
          "permutation-only floor | input gather (ms) | floor boundary/plain |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.nets.split(","):
        result = bound(NETWORKS[name][0](), args.reps)
        plain = result["plain_us"]
        print(f"| {name} | {result['layers']} | {plain / 1e3:.2f} | {result['im2col_us'] / 1e3:.2f} | "
              f"{(plain + result['im2col_us']) / plain:.2f} | {(plain + result['minimal_us']) / plain:.2f} | "
              f"{result['boundary_us'] / 1e3:.3f} | {(plain + result['boundary_us']) / plain:.3f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
