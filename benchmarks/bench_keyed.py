"""Benchmark: keyed against plain onnxruntime latency, both layout policies.

For each network (export/zoo/networks.py, and ultralytics' YOLOv8n at 320x320: ``yolov8n``, exported with a
dynamic batch by ultralytics itself in a child process, export/zoo/yolo.py, when ultralytics and PyTorch are
installed), batch size and thread count, in one process: the plain
model (float NCHW input, as its users feed it) and the keyed models (uint8 measurement input, the
preprocessing inside), each an onnxruntime session at ORT_ENABLE_ALL, timed in interleaved
repetitions; medians and the ratio keyed / plain. Also: compile time, keyed / plain file size and
peak memory ratio (resident set growth while running, measured in child processes).

Then the int8 columns (``--int8``, benchmarks/bench_int8.py): for ResNet-18@224, MobileNetV2@224, YOLOv8n@320
and BlazeFace@128 by default, plain and keyed (`boundary`), float32 and int8 (onnxruntime's static
quantiser, calibrated on the same photos: ``export/quantize``), batch 1, at each thread count.

    python benchmarks/bench_keyed.py [--nets resnet18,resnet20,vgg16_bn,mobilenet_v2,yolov8n,blazeface] [--reps 30]
        [--batches 1,32] [--threads 1,2] [--int8 resnet18,mobilenet_v2,yolov8n,blazeface | none]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from export.keyify import KeyifyOptions, keyify  # noqa: E402
from export.zoo import NETWORKS  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from timing import interleaved, session  # noqa: E402


def yolov8n(size: int = 320) -> onnx.ModelProto:
    """ultralytics' own ONNX export of YOLOv8n (random weights), dynamic batch, cached between runs."""
    from export.zoo.yolo import export_yolov8n

    folder = Path(tempfile.gettempdir()) / "keycam-bench-yolov8n"
    return onnx.load(export_yolov8n(folder, [((size, size), True)])[0])


def blazeface() -> onnx.ModelProto:
    """The trained BlazeFace face detector the set-up converts (edge/faces.py), 128x128, fixed batch 1."""
    from edge.faces import face_model

    return onnx.load(face_model())


# name: (builder, (H, W), mean, std) as in export.zoo.NETWORKS; YOLOv8n reads images / 255, BlazeFace (x - 127.5) / 127.5
BENCHMARKED = {**NETWORKS, "yolov8n": (yolov8n, (320, 320), None, (255.0,)),
               "blazeface": (blazeface, (128, 128), (127.5,), (127.5,))}


def peak_memory(path: Path | None, feed_name: str = "", shape: list[int] | None = None, dtype: str = "",
                threads: int = 2) -> int:
    """Peak resident set (KiB) of a fresh process that loads the model and runs it three times
    (with ``path`` None: of one that only imports numpy and onnxruntime, the baseline to subtract)."""
    run = "" if path is None else f"""
o = ort.SessionOptions(); o.intra_op_num_threads = {threads}; o.log_severity_level = 3
s = ort.InferenceSession({str(path)!r}, o, providers=["CPUExecutionProvider"])
x = np.zeros({shape}, dtype={dtype!r})
for _ in range(3):
    s.run(None, {{{feed_name!r}: x}})
"""
    # VmHWM is the new address space's own high-water mark (ru_maxrss would carry the parent's over exec)
    code = "import numpy as np, onnxruntime as ort\n" + run + \
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", default="resnet18,resnet20,vgg16_bn,mobilenet_v2,yolov8n")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    parser.add_argument("--no-latency", action="store_true", help="only compile time, file size and memory")
    parser.add_argument("--int8", default="resnet18,mobilenet_v2,yolov8n,blazeface",
                        help="networks of the int8 table (plain and keyed, float32 and int8, batch 1, `boundary`; "
                             "benchmarks/bench_int8.py), or 'none'")
    parser.add_argument("--int8-reps", type=int, default=100)
    args = parser.parse_args()
    key = MasterKey.generate()
    rows, extras = [], []
    print(f"# keyed vs plain, {date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"onnxruntime {ort.__version__}, median of {args.reps} interleaved runs\n")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.nets.split(","):
            build, (height, width), mean, std = BENCHMARKED[name]
            plain = build()
            feed_name = plain.graph.input[0].name
            fixed = plain.graph.input[0].type.tensor_type.shape.dim[0].dim_value  # 0: a batch the model leaves open
            peak_batch = fixed or 32
            plain_path = folder / f"{name}.onnx"
            onnx.save(plain, plain_path)
            keyed_paths = {}
            for policy in ("fresh", "boundary"):
                start = time.perf_counter()
                result = keyify(plain, key, KeyifyOptions(policy=policy, mean=mean, std=std, size=(height, width)))
                compile_s = time.perf_counter() - start
                path = folder / f"{name}-{policy}.onnx"
                onnx.save(result.model, path)
                keyed_paths[policy] = path
                size_ratio = path.stat().st_size / plain_path.stat().st_size
                base = peak_memory(None)
                mem_plain = peak_memory(plain_path, feed_name, [peak_batch, 3, height, width], "float32", 2) - base
                mem_keyed = peak_memory(path, "measurement", [peak_batch, height, width, 3], "uint8", 2) - base
                extras.append((name, policy, compile_s, size_ratio, mem_plain / 1024, mem_keyed / 1024))
            batches = [] if args.no_latency else [int(b) for b in args.batches.split(",")]
            for batch in (b for b in batches if not fixed or b == fixed):  # a fixed batch: only that one
                rng = np.random.default_rng(0)
                x = rng.standard_normal((batch, 3, height, width)).astype(np.float32)
                m = rng.integers(0, 256, (batch, height, width, 3)).astype(np.uint8)
                for threads in (int(t) for t in args.threads.split(",")):
                    runs = {"plain": (session(plain_path, threads), {feed_name: x})}
                    for policy, path in keyed_paths.items():
                        runs[policy] = (session(path, threads), {"measurement": m})
                    med = interleaved(runs, args.reps, warm=1)
                    rows.append((name, batch, threads, med["plain"], med["fresh"], med["boundary"]))
                    print(f"  {name} batch {batch} threads {threads}: plain {med['plain']:.2f} ms, fresh "
                          f"{med['fresh']:.2f} ms ({med['fresh'] / med['plain']:.2f}x), boundary "
                          f"{med['boundary']:.2f} ms ({med['boundary'] / med['plain']:.2f}x)", file=sys.stderr)
    print("| network | batch | threads | plain (ms) | fresh (ms) | fresh / plain | boundary (ms) | boundary / plain |")
    print("|---|---|---|---|---|---|---|---|")
    for name, batch, threads, p, f, b in rows:
        print(f"| {name} | {batch} | {threads} | {p:.2f} | {f:.2f} | {f / p:.2f} | {b:.2f} | {b / p:.2f} |")
    print("\n| network | policy | compile (s) | keyed / plain file size | peak memory, batch 32 (a fixed batch: its own), above the "
          "runtime's own: plain (MiB) | keyed (MiB) | keyed / plain |")
    print("|---|---|---|---|---|---|---|")
    for name, policy, compile_s, size_ratio, plain_mib, keyed_mib in extras:
        ratio = keyed_mib / plain_mib if plain_mib > 0 else float("nan")
        print(f"| {name} | {policy} | {compile_s:.2f} | {size_ratio:.2f} | {plain_mib:.0f} | {keyed_mib:.0f} | "
              f"{ratio:.2f} |")
    if args.int8 != "none":
        from bench_int8 import int8_table

        print(f"\n# int8 columns: median of {args.int8_reps} interleaved runs, batch 1 (load {os.getloadavg()[0]:.1f})\n")
        for line in int8_table(args.int8.split(","), [int(t) for t in args.threads.split(",")], args.int8_reps, key):
            print(line)
    if args.json:
        args.json.write_text(json.dumps({"latency": rows, "extras": extras}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
