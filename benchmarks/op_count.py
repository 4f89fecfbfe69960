"""Count the multiply-accumulates and other arithmetic of an ONNX model, per frame, from its graph.

    python benchmarks/op_count.py [MODEL.onnx ...]      # default: the default model, plain and keyed
    python benchmarks/op_count.py --time                # also time it with onnxruntime on this machine

Shapes come from onnxruntime itself (every intermediate tensor is made a graph output and the model run
once on zeros, batch 1), so the count holds for keyed models too. MACs are counted for Conv, ConvTranspose,
Gemm and MatMul (a MAC is two FLOPs); every other node is counted as one operation per output element
(Relu, Add, MaxPool windows, Gather, ...), which is what they cost up to a small factor. docs/raspberry-pi.md
turns these counts into frame-rate estimates for the Raspberry Pi 4 and 5.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from export.prepare.probe import every_tensor_session  # noqa: E402

ASSET = ROOT / "edge" / "assets" / "fashion_mnist_cnn.onnx"

_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(uint16)": np.uint16,
           "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(double)": np.float64}


def _feeds(session: ort.InferenceSession) -> dict[str, np.ndarray]:
    feeds = {}
    for item in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in item.shape]
        feeds[item.name] = np.zeros(shape, _DTYPES[item.type])
    return feeds


def shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape for one frame, as onnxruntime computes it."""
    session, names = every_tensor_session(model)
    values = session.run(names, _feeds(session))
    found = {name: tuple(np.shape(value)) for name, value in zip(names, values)}
    for item in session.get_inputs():
        found[item.name] = tuple(d if isinstance(d, int) else 1 for d in item.shape)
    for init in model.graph.initializer:
        found[init.name] = tuple(init.dims)
    return found


def count(model: onnx.ModelProto) -> dict[str, dict[str, int]]:
    """{op_type: {"nodes", "macs", "other"}} for one frame."""
    shape = shapes(model)
    table: dict[str, dict[str, int]] = defaultdict(lambda: {"nodes": 0, "macs": 0, "other": 0})
    for node in model.graph.node:
        row = table[node.op_type]
        row["nodes"] += 1
        out = shape.get(node.output[0], ())
        if node.op_type == "Conv":  # weight (M, C/group, kh, kw): one MAC per weight element per output position
            row["macs"] += int(np.prod(out)) * int(np.prod(shape[node.input[1]][1:]))
        elif node.op_type == "ConvTranspose":  # weight (C, M/group, kh, kw): per input element
            row["macs"] += int(np.prod(shape[node.input[0]])) * int(np.prod(shape[node.input[1]][1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a = shape[node.input[0]]
            transposed = any(att.name == "transA" and att.i for att in node.attribute)
            inner = a[-2] if (node.op_type == "Gemm" and transposed) else a[-1]
            row["macs"] += int(np.prod(out)) * int(inner)
        else:
            row["other"] += int(np.prod(out)) if out else 1
    return dict(table)


def keyed_default(folder: Path) -> Path:
    """The default model keyed as ``keycam demo`` / ``keycam run`` key it (a public test key: protects nothing)."""
    from edge.default import MEAN, SPEC, STD
    from export.keyify import KeyifyOptions, keyify
    from export.package.save import save
    from firmware_sim.keys import MasterKey

    key = MasterKey(hashlib.sha256(b"op_count, a public key").digest())
    target = folder / "keyed.onnx"
    save(keyify(ASSET, key, KeyifyOptions(spec=SPEC, mean=MEAN, std=STD)), target)
    return target


def report(path: Path, label: str, timing: bool) -> None:
    model = onnx.load(path)
    table = count(model)
    macs = sum(row["macs"] for row in table.values())
    other = sum(row["other"] for row in table.values())
    nodes = sum(row["nodes"] for row in table.values())
    print(f"{label}: {path.name}, {nodes} nodes")
    for op, row in sorted(table.items(), key=lambda item: (-item[1]["macs"], -item[1]["other"])):
        print(f"  {op:<16} {row['nodes']:>3} nodes  {row['macs']:>12,} MACs  {row['other']:>10,} other ops")
    print(f"  total: {macs:,} MACs = {2 * macs / 1e6:.2f} MFLOPs, plus {other:,} other ops "
          f"({(2 * macs + other) / 1e6:.2f} M operations per frame)")
    if timing:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feeds = _feeds(session)
        for _ in range(50):
            session.run(None, feeds)
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < 2.0:
            session.run(None, feeds)
            runs += 1
        seconds = (time.perf_counter() - start) / runs
        print(f"  onnxruntime here, 1 thread: {seconds * 1e3:.3f} ms per frame "
              f"({2 * macs / seconds / 1e9:.2f} GFLOP/s on its MACs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--time", action="store_true", help="also time each model with onnxruntime, 1 thread")
    args = parser.parse_args()
    if args.models:
        for path in args.models:
            report(path, "model", args.time)
        return
    report(ASSET, "plain default model", args.time)
    with tempfile.TemporaryDirectory() as folder:
        report(keyed_default(Path(folder)), "keyed default model (keycam demo's compilation, gray8)", args.time)


if __name__ == "__main__":
    main()
