"""Benchmark: int8 keyed models against int8 plain models, and against float32 keyed models (`boundary`).

For each network, in one process: the plain model (float NCHW input) and its keyed twin (uint8
measurement input, `boundary`, the default policy), each in float32 and in int8 (onnxruntime's static
quantiser, QDQ, per-channel int8 weights, uint8 activations, calibrated on foolbox's 20 ImageNet photos:
the plain model on the photos as it takes them, the keyed model on their measurements, with the plain
model's first layer; `export/quantize`). Four onnxruntime sessions at ORT_ENABLE_ALL, batch 1, timed in
interleaved repetitions (shuffled, ``timing.py``) at each thread count, the float32 pair and the int8 models
in two groups (:func:`timed`); medians, keyed / plain per precision, and float32 keyed /
int8 keyed (the int8 speed-up a keyed model gets). A fifth session, for timing only, runs the keyed int8
model less its natural-order gather (:func:`without_gather`; its answers are not the plain model's): it splits
keyed / plain into what the key's gather costs and what the rest of the keyed input costs (the cast and the
normalisation that the plain model's users do outside it).

    python benchmarks/bench_int8.py [--nets resnet18,mobilenet_v2,yolov8n,blazeface] [--reps 100] [--threads 1,2]

Networks: ``export.zoo.NETWORKS`` (ResNet-18 and MobileNetV2 at 224, random weights), YOLOv8n at 320 as
ultralytics exports it (``export/zoo/yolo.py``, random weights; needs the test extra) and the trained BlazeFace
face detector at 128 (``edge/faces.py``), or any model given as ``--model NAME=PLAIN.onnx:HxW:MEAN:STD``; a
network that is not available is reported as such, not silently dropped.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.lab.verify import plain_input  # noqa: E402
from edge.runtime import KeyedModel  # noqa: E402
from edge.sensor import Readout  # noqa: E402
from export.keyify import KeyifyOptions, keyify  # noqa: E402
from export.package.save import save  # noqa: E402
from export.quantize import quantize_file, quantize_plain  # noqa: E402
from export.zoo import NETWORKS  # noqa: E402
from firmware_sim.errors import KeycamError  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from timing import interleaved, session  # noqa: E402



def photos() -> list[np.ndarray]:
    import importlib.util

    found = importlib.util.find_spec("foolbox")
    folder = Path(next(iter(found.submodule_search_locations))) / "data"
    return [cv2.imread(str(p)) for p in sorted(folder.glob("imagenet_*.jpg"))]


def network(name: str, given: dict[str, str]):
    """(plain model, (H, W), mean, std) or a reason it is not available."""
    if name in given:
        path, size, mean, std = given[name].split(":")
        height, width = (int(v) for v in size.split("x"))
        floats = [tuple(float(v) for v in s.split(",")) if s else None for s in (mean, std)]
        return onnx.load(path), (height, width), *floats
    if name in NETWORKS:
        build, size, mean, std = NETWORKS[name]
        return build(), size, mean, std
    if name == "yolov8n":  # as ultralytics exports it, 320x320, batch 1 (export/zoo/yolo.py; the test extra)
        try:
            from export.zoo import yolo
        except ImportError:
            return "export/zoo/yolo.py (the YOLOv8n export fixture) is not in this tree"
        if not yolo.available():
            return "needs ultralytics and PyTorch (the test extra) to export YOLOv8n"
        (path,) = yolo.export_yolov8n(Path(tempfile.gettempdir()) / "keycam-bench-yolo", [((320, 320), False)])
        return onnx.load(path), (320, 320), (0.0,), (255.0,)
    if name == "blazeface":  # the trained face detector, 128x128 (edge/faces.py; scripts/face-detector.sh)
        try:
            from edge.faces import MEAN, STD, face_model
            return onnx.load(face_model()), (128, 128), MEAN, STD
        except (ImportError, KeycamError) as error:
            return f"the face detector is not available ({error})"
    return f"unknown network {name!r}"


def models(folder: Path, name: str, plain: onnx.ModelProto, size, mean, std, key: MasterKey) -> dict[str, tuple]:
    """The four models of a network and what to feed each: {label: (path, input name, input)}."""
    plain_path, keyed_path = folder / f"{name}.onnx", folder / f"{name}-keyed.onnx"
    onnx.save(plain, plain_path)
    save(keyify(plain, key, KeyifyOptions(mean=mean, std=std, channel_order="bgr", size=size)), keyed_path)
    manifest = KeyedModel(keyed_path, key).manifest
    readout = Readout.for_model(manifest, key)
    frames = np.stack([readout.prepare(p, "bgr") for p in photos()])
    measured = np.stack([readout.measure(f, manifest.epoch) for f in frames])
    onnx.save(quantize_plain(plain_path, plain_input(frames[:10], manifest)), folder / f"{name}.int8.onnx")
    quantize_file(keyed_path, measured[:10], folder / f"{name}-keyed.int8.onnx", calibration="10 photos",
                  plain=plain_path)
    batch = manifest.input.shape[0] or 1
    x, m = plain_input(frames[:batch], manifest), measured[:batch]
    plain_name = ort.InferenceSession(str(plain_path), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    runs = {"plain fp32": (plain_path, plain_name, x), "keyed fp32": (keyed_path, "measurement", m),
            "plain int8": (folder / f"{name}.int8.onnx", plain_name, x),
            "keyed int8": (folder / f"{name}-keyed.int8.onnx", "measurement", m)}
    less = folder / f"{name}-keyed.int8.less-gather.onnx"
    if without_gather(folder / f"{name}-keyed.int8.onnx", less):
        runs["less gather"] = (less, "measurement", m)
    return runs


def natural_gather(model: onnx.ModelProto, path: Path) -> tuple[onnx.NodeProto, list[onnx.NodeProto]] | None:
    """The GatherElements of the keyed model at ``path`` that reads its one sensor table, and the Expand and Shape
    that size the table to the batch (none for a fixed batch); None when it has no such gather."""
    from firmware_sim.manifest import Manifest

    manifest = Manifest.from_json(path.with_name(path.stem + ".manifest.json").read_text())
    if len(manifest.sensor_tables) != 1:
        return None
    (table,) = manifest.sensor_tables
    g = model.graph
    producers = {o: n for n in g.node for o in n.output}
    index = {table} | {n.output[0] for n in g.node if n.op_type == "Expand" and n.input[0] == table}
    gathers = [n for n in g.node if n.op_type == "GatherElements" and n.input[1] in index]
    if len(gathers) != 1:
        return None
    expand = producers.get(gathers[0].input[1])
    return gathers[0], [] if expand is None else [expand, producers[expand.input[1]]]


def without_gather(path: Path, out: Path) -> bool:
    """Write the keyed model at ``path`` less its natural-order gather to ``out`` (False: it has no such gather).

    The GatherElements that reads the sensor table (and the Expand and Shape that size the table) go; what read
    the gathered codes reads the cast codes, in the sensor layout, instead: the same shapes, so the same work
    for every other node. For timing only."""
    model = onnx.load(path)
    found = natural_gather(model, path)
    if found is None:
        return False
    gather, sizing = found
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name == gather.output[0]:
                node.input[i] = gather.input[0]
    for node in [gather, *sizing]:
        model.graph.node.remove(node)
    onnx.save(model, out)
    return True


def timed(runs: dict[str, tuple], threads: int, reps: int) -> dict[str, float]:
    """Medians (ms); the float32 and the int8 models are timed in two interleaved groups, one after the other: a
    camera runs one model frame after frame, and an int8 model run right after a float one finds its weights and
    tables evicted (4.6-6.7 % slower for MobileNetV2, ``timing.py``)."""
    medians: dict[str, float] = {}
    for precision in ("fp32", "int8"):
        group = {label: run for label, run in runs.items() if _precision(label) == precision}
        medians |= interleaved({label: (session(path, threads), {feed: data})
                                for label, (path, feed, data) in group.items()}, reps)
    return medians


def _precision(label: str) -> str:
    return "fp32" if label.endswith("fp32") else "int8"


HEADER = ["| network | threads | plain fp32 (ms) | keyed fp32 (ms) | keyed / plain fp32 | plain int8 (ms) | "
          "keyed int8 (ms) | keyed / plain int8 | keyed int8 less its gather / plain int8 | "
          "keyed fp32 / keyed int8 |",
          "|---|---|---|---|---|---|---|---|---|---|"]


def _ratio(m: dict[str, float], a: str, b: str) -> str:
    return f"{m[a] / m[b]:.3f}" if a in m else "n/a"


def int8_table(names: list[str], threads: list[int], reps: int, key: MasterKey,
               given: dict[str, str] | None = None) -> list[str]:
    """The table's lines (and one line per network that could not be measured, saying why)."""
    rows, missing = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            found = network(name, given or {})
            if isinstance(found, str):
                missing.append(f"{name}: not measured: {found}")
                continue
            plain, size, mean, std = found
            runs = models(Path(tmp), name, plain, size, mean, std, key)
            for count in threads:
                m = timed(runs, count, reps)
                print(f"  {name} threads {count}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in m.items()),
                      file=sys.stderr)
                rows.append(f"| {name} @ {size[0]}x{size[1]} | {count} | {m['plain fp32']:.2f} | "
                            f"{m['keyed fp32']:.2f} | {m['keyed fp32'] / m['plain fp32']:.2f} | {m['plain int8']:.2f} | "
                            f"{m['keyed int8']:.2f} | {m['keyed int8'] / m['plain int8']:.3f} | "
                            f"{_ratio(m, 'less gather', 'plain int8')} | {m['keyed fp32'] / m['keyed int8']:.2f} |")
    return HEADER + rows + [""] * bool(missing) + missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", default="resnet18,mobilenet_v2,yolov8n,blazeface")
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PLAIN.onnx:HxW:MEAN:STD")
    args = parser.parse_args()
    given = dict(item.split("=", 1) for item in args.model)
    key = MasterKey.generate()
    load = os.getloadavg()[0]
    print(f"# int8 keyed (boundary), {date.today().isoformat()}, {platform.machine()} {platform.processor()}, "
          f"{os.cpu_count()} cores (load {load:.1f} at the start), onnxruntime {ort.__version__}, batch 1, "
          f"median of {args.reps} interleaved runs\n")
    for line in int8_table(args.nets.split(","), [int(t) for t in args.threads.split(",")], args.reps, key, given):
        print(line)
    print(f"\nload average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other work on these cores "
          f"slows the 2-thread runs most)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
