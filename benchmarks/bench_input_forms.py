"""Benchmark: four ways to write a ``boundary`` model's natural-order input, in one run, int8 keyed / plain.

The keyed int8 model as the compiler writes it (``export/compiler/inputs.py``: cast the (N, HW·C) codes, one
GatherElements with a table of code indices ``inv[a]·C + order[k]``) and three rewrites of it that do the same
data movement another way; each rewrite is checked to give the keyed model's outputs bit for bit before it is
timed:

- ``old``: transpose the uint8 codes to (N, C, HW), GatherElements along positions, gather the channels (BGR
  only), cast (the compiler's form until 2026-12-01);
- ``cast-transpose``: cast, transpose, GatherElements along positions, gather the channels;
- ``uint8-flat``: GatherElements over the (N, HW·C) uint8 codes with the code table, then cast.

Plain int8 and the four keyed int8 models are timed in interleaved repetitions in shuffled order
(``timing.py``), one thread, batch 1, for ``--rounds`` rounds; each round prints keyed / plain per form.

    python benchmarks/bench_input_forms.py [--nets mobilenet_v2,yolov8n,blazeface] [--reps 200] [--rounds 3]

Networks and calibration as in ``bench_int8.py`` (YOLOv8n needs the test extra).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_int8 import models, natural_gather, network  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from firmware_sim.manifest import Manifest  # noqa: E402
from timing import interleaved, session  # noqa: E402

FORMS = ("old", "cast-transpose", "uint8-flat")
FLOAT = onnx.TensorProto.FLOAT


def rewrite(path: Path, form: str) -> Path:
    """The keyed model at ``path`` with its input written as ``form`` (see the module docstring)."""
    manifest = Manifest.from_json(path.with_name(path.stem + ".manifest.json").read_text())
    (table,) = manifest.sensor_tables
    batch, height, width, c = manifest.input.shape
    n = height * width
    model = onnx.load(path)
    g = model.graph
    init = {i.name: i for i in g.initializer}
    codes_table = numpy_helper.to_array(init[table])  # (1 or B, C·HW): inv[a]·C + order[k]
    first = codes_table[0].astype(np.int64)
    order = first[np.arange(c) * n] % c  # the channel plane k reads
    inv = (first[:n] - order[0]) // c  # natural a <- physical inv[a]
    producers = {o: node for node in g.node for o in node.output}
    gather, sizing = natural_gather(model, path)  # and the Expand and Shape of a dynamic batch
    cast = producers[gather.input[0]]
    drop = [gather, cast, producers[cast.input[0]], *sizing]  # and the Reshape of the measurement
    positions = inv.reshape(1, 1, n).astype(np.int32)  # (1, 1, HW), or (B, C, HW) for a fixed batch
    if batch is not None:
        positions = np.ascontiguousarray(np.broadcast_to(positions, (batch, c, n)))
    init[table].CopyFrom(numpy_helper.from_array(codes_table if form == "uint8-flat" else positions, table))
    for name, value in (("forms/rows", [-1, n, c]), ("forms/flat", [-1, n * c])):
        g.initializer.append(numpy_helper.from_array(np.array(value, np.int64), name))
    g.initializer.append(numpy_helper.from_array(order, "forms/order"))
    out, new = gather.output[0], []

    def index(data: str) -> str:
        if batch is not None:
            return table
        new.extend([helper.make_node("Shape", [data], ["forms/shape"]),
                    helper.make_node("Expand", [table, "forms/shape"], ["forms/index"])])
        return "forms/index"

    flip = not np.array_equal(order, np.arange(c))
    if form == "old":  # (N, HW, C) -> (N, C, HW) uint8, gather positions, channels, cast
        new += [helper.make_node("Reshape", ["measurement", "forms/rows"], ["forms/r"]),
                helper.make_node("Transpose", ["forms/r"], ["forms/t"], perm=[0, 2, 1])]
        new.append(helper.make_node("GatherElements", ["forms/t", index("forms/t")], ["forms/g"], axis=2))
        data = "forms/g"
        if flip:
            new.append(helper.make_node("Gather", [data, "forms/order"], ["forms/o"], axis=1))
            data = "forms/o"
        new.append(helper.make_node("Cast", [data], [out], to=FLOAT))
    elif form == "cast-transpose":  # cast, (N, HW, C) -> (N, C, HW) float, gather positions, channels
        new += [helper.make_node("Reshape", ["measurement", "forms/rows"], ["forms/r"]),
                helper.make_node("Cast", ["forms/r"], ["forms/c"], to=FLOAT),
                helper.make_node("Transpose", ["forms/c"], ["forms/t"], perm=[0, 2, 1])]
        new.append(helper.make_node("GatherElements", ["forms/t", index("forms/t")],
                                    ["forms/g" if flip else out], axis=2))
        if flip:
            new.append(helper.make_node("Gather", ["forms/g", "forms/order"], [out], axis=1))
    else:  # uint8-flat: (N, HW·C) uint8, gather codes, cast
        new.append(helper.make_node("Reshape", ["measurement", "forms/flat"], ["forms/r"]))
        new.append(helper.make_node("GatherElements", ["forms/r", index("forms/r")], ["forms/g"], axis=1))
        new.append(helper.make_node("Cast", ["forms/g"], [out], to=FLOAT))
    at = min(list(g.node).index(node) for node in drop)
    for node in drop:
        g.node.remove(node)
    for k, node in enumerate(new):
        g.node.insert(at + k, node)
    target = path.with_name(f"{path.stem}.{form}.onnx")
    onnx.save(model, target)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", default="mobilenet_v2,yolov8n,blazeface")
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    key = MasterKey.generate()
    print(f"# boundary input forms, int8 keyed / plain, {date.today().isoformat()}, {platform.machine()}, "
          f"{os.cpu_count()} cores (load {os.getloadavg()[0]:.1f}), onnxruntime {ort.__version__}, batch 1, one "
          f"thread, median of {args.reps} shuffled interleaved runs a round\n")
    print("| network | round | plain int8 (ms) | compiler's (cast, GatherElements over codes) | "
          + " | ".join(FORMS) + " |")
    print("|---|---|---|---|" + "---|" * len(FORMS))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.nets.split(","):
            found = network(name, {})
            if isinstance(found, str):
                print(f"| {name} | not measured: {found} |")
                continue
            runs = models(Path(tmp), name, *found, key)
            path, _, measured = runs["keyed int8"]
            plain_path, plain_name, x = runs["plain int8"]
            want = session(path, 1).run(None, {"measurement": measured})
            timed = {"plain": (session(plain_path, 1), {plain_name: x}),
                     "compiler": (session(path, 1), {"measurement": measured})}
            for form in FORMS:
                rewritten = session(rewrite(path, form), 1)
                got = rewritten.run(None, {"measurement": measured})
                if not all(np.array_equal(a, b) for a, b in zip(got, want)):
                    raise SystemExit(f"{name}: the {form} rewrite changed the outputs")
                timed[form] = (rewritten, {"measurement": measured})
            for round_ in range(args.rounds):
                m = interleaved(timed, args.reps, seed=round_)
                cells = " | ".join(f"{m[label] / m['plain']:.3f}" for label in ("compiler", *FORMS))
                print(f"| {name} | {round_ + 1} | {m['plain']:.2f} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
