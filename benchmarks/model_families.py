"""Benchmark: the model families users bring, keyed under both policies: accepted, exact, and how fast.

For each family (issue 21's list: ultralytics 8.4's YOLOv8n, YOLO11n detect/seg/pose/obb/cls, YOLOv10n end to end
and RT-DETR-l; timm and torchvision classifiers exported with torch.onnx; mediapipe's face detector converted by
tflite2onnx and its palm detector converted by tf2onnx), in one process:

1. the plain ONNX model as its exporter writes it (made in child processes, cached in ``--work`` between runs):

   - ultralytics from its architecture configs (``YOLO("yolo11n-seg.yaml").export(format="onnx", imgsz=...,
     dynamic=..., nms=False)``: random weights, nothing downloaded). YOLOv8n comes from ``export.zoo.yolo``; the other
     YOLOs get the same treatment as there and in the ultralytics decoder tests (batch-norm statistics re-estimated
     on noise with gains of 0.85, the class prior zeroed, the heads' last layers scaled, the prototypes'
     up-convolution a nearest upsampling, the classifier's last layer scaled), so that the random networks detect
     (scores over (0.5, 1), boxes that differ) and the decoded comparison has answers to compare; the exported graph
     is the same either way. RT-DETR-l is exported as built;
   - timm (``timm.create_model(name, pretrained=False)``, dynamic batch) and torchvision (``weights=None``, fixed
     batch 1), ``torch.onnx.export(..., dynamo=False)`` (the dynamo exporter needs onnxscript, not installed); timm's
     ``pretrained_cfg`` is written into the ONNX metadata as JSON under ``pretrained_cfg`` (keycam reads mean and std
     from it); torchvision's models carry nothing, so ImageNet's mean and std are given (``--mean/--std``);
   - mediapipe 0.10.21's face detector as ``scripts/face-detector.sh`` converts it (tflite2onnx 0.4.1; keyed as
     docs/tasks.md says: mean = std = 127.5) and its palm detector converted by tf2onnx 1.17 in its own environment
     (docs/compiler.md, "Converting TFLite models": mean 0, std 255, letterbox padded with 0);

2. ``export.keyify`` under ``boundary`` (the default) and ``fresh`` (the paper's), the preprocessing from the model's
   metadata where it has some; a refusal is a row with its one line;
3. ``edge.lab.verify.verify`` on scikit-image's photos (the device's framing, readout and answer stage; batches that
   fit the model): raw outputs (the largest difference relative to the output's range) and decoded answers (keycam's
   default thresholds, 0.5 / 0.45; RT-DETR with ``decoder = "rtdetr"`` and a threshold under its random scores);
4. onnxruntime CPU latency (``benchmarks/timing.py``: ORT_ENABLE_ALL, ``--threads`` intra-op threads, interleaved
   repetitions in a shuffled order, medians) of the plain model (float input, normalised outside) and each keyed
   model (uint8 measurement) at batch 1 (a fixed-batch model: its batch), on one real photo's frame.

Prints markdown: the date, the machine, the command, the load before and after, and the table (docs/tasks.md,
"Model families: accepted, exact, speed").

    python benchmarks/model_families.py [--reps 50] [--threads 2] [--only yolov8n-320-fixed,resnet18-timm,...]
        [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.lab.demo import shipped_photo  # noqa: E402
from edge.lab.verify import VerifyReport, plain_input, prepare_frame, verify  # noqa: E402
from edge.sensor import Readout  # noqa: E402
from edge.tasks import TaskConfig  # noqa: E402
from export.keyify import KeyifyOptions, keyify  # noqa: E402
from export.package.save import save  # noqa: E402
from export.zoo.yolo import DETECTING  # noqa: E402
from firmware_sim.errors import KeycamError  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from firmware_sim.manifest import Manifest  # noqa: E402
from timing import interleaved, session  # noqa: E402

PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "motorcycle_left")  # square and not
POLICIES = ("boundary", "fresh")
IMAGENET = dict(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))  # torchvision's, on the 0..255 scale
SHARE = Path(sys.prefix) / "share" / "keycam"
TESTS = "tests/edge/tasks/"


@dataclass(frozen=True)
class Family:
    name: str  # the --only handle
    model: str  # the table's first column
    exporter: str  # ultralytics | timm | torchvision | face | palm
    size: int
    dynamic: bool
    arch: str = ""  # ultralytics yaml / timm or torchvision name
    options: dict = field(default_factory=dict)  # KeyifyOptions beyond the policy
    settings: TaskConfig | None = None  # how verify decodes (None: the manifest's task, keycam's defaults)
    reps: int | None = None  # fewer for the big ones
    predict: str = "n/a"  # answers against ultralytics' predict


def _ultra(name, model, arch, size=320, dynamic=False, predict="", **more) -> Family:
    return Family(name, model, "ultralytics", size, dynamic, arch, predict=predict, **more)


DETECT, SEGMENT, POSE_OBB, CLASSIFY = (f"{TESTS}test_ultralytics_{t}.py" for t in ("detect", "segment", "pose_obb",
                                                                                     "classify"))
NOT_V8 = f"not tested (the same `yolo` decoder is, on YOLO11n: {DETECT})"
FAMILIES = [
    _ultra("yolov8n-320-fixed", "YOLOv8n", "yolov8n.yaml", predict=NOT_V8),
    _ultra("yolov8n-320-dynamic", "YOLOv8n", "yolov8n.yaml", dynamic=True, predict=NOT_V8),
    _ultra("yolov8n-640-fixed", "YOLOv8n", "yolov8n.yaml", size=640, predict=NOT_V8, reps=20),
    _ultra("yolov8n-640-dynamic", "YOLOv8n", "yolov8n.yaml", size=640, dynamic=True, predict=NOT_V8, reps=20),
    _ultra("yolo11n-320-fixed", "YOLO11n", "yolo11n.yaml", predict=f"yes: {DETECT}"),
    _ultra("yolo11n-320-dynamic", "YOLO11n", "yolo11n.yaml", dynamic=True,
           predict=f"yes for the fixed-batch export: {DETECT}"),
    _ultra("yolo11n-seg-320-fixed", "YOLO11n-seg", "yolo11n-seg.yaml",
           predict=f"yes (boxes; masks IoU >= 0.9, areas equal): {SEGMENT}"),
    _ultra("yolo11n-pose-320-fixed", "YOLO11n-pose", "yolo11n-pose.yaml", predict=f"yes: {POSE_OBB}"),
    _ultra("yolo11n-obb-320-fixed", "YOLO11n-obb", "yolo11n-obb.yaml",
           predict=f"yes, under ultralytics' own rotated NMS (`rotated_nms = \"probiou\"`): {POSE_OBB}"),
    _ultra("yolo11n-cls-320-fixed", "YOLO11n-cls", "yolo11n-cls.yaml", predict=f"yes: {CLASSIFY}"),
    _ultra("yolov10n-320-fixed", "YOLOv10n, `nms=False`", "yolov10n.yaml", predict=f"yes: {DETECT}"),
    _ultra("rtdetr-l-320-fixed", "RT-DETR-l", "rtdetr-l.yaml",
           predict=f"yes (a slow test; `decoder = \"rtdetr\"` named, boxes compared clipped): {DETECT}",
           settings=TaskConfig(decoder="rtdetr", score_threshold=0.02), reps=10),
    *(Family(f"{arch}-timm", f"timm {arch}", "timm", 224, True, arch, {"task": "classify"})
      for arch in ("mobilenetv3_small_100", "resnet18", "efficientnet_b0", "vit_tiny_patch16_224")),
    *(Family(f"{arch}-torchvision", f"torchvision {arch}", "torchvision", 224, False, arch,
             {"task": "classify", **IMAGENET}) for arch in ("resnet18", "mobilenet_v3_small")),
    Family("face-tflite2onnx", "mediapipe face detection short range", "face", 128, False,
           options={"mean": (127.5,), "std": (127.5,), "task": "detect", "labels": ("face",)},
           settings=TaskConfig(kind="detect", decoder="ssd", score_threshold=0.5, iou_threshold=0.3)),
    Family("palm-tf2onnx", "mediapipe palm detection lite", "palm", 192, False,
           options={"mean": (0.0,), "std": (255.0,), "fit": "letterbox", "pad": 0.0, "task": "detect",
                    "labels": ("palm",)},
           # MediaPipe's palm anchors are BlazeFace's options at 192 x 192 (2016 anchors): [task.anchors]' defaults
           settings=TaskConfig(kind="detect", decoder="ssd", score_threshold=0.5, iou_threshold=0.3)),
]

# -- the plain models, made in child processes --------------------------------------------------------------------

_CHILD = r'''
import json, shutil, sys
import torch
_tv = torch.library.Library("torchvision", "DEF")  # the installed torchvision's operators cannot load beside this torch
_tv.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_tv.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
import onnx

''' + DETECTING + r'''

for item in json.loads(sys.argv[1]):
    torch.manual_seed(0)
    if item["exporter"] == "ultralytics":
        from ultralytics import RTDETR, YOLO
        rtdetr = item["arch"].startswith("rtdetr")
        model = (RTDETR if rtdetr else YOLO)(item["arch"])
        if not rtdetr:
            detecting(model.model, item["size"])
        made = model.export(format="onnx", imgsz=item["size"], dynamic=item["dynamic"], nms=False, verbose=False)
        shutil.move(made, item["path"])
        continue
    if item["exporter"] == "timm":
        import timm
        net = timm.create_model(item["arch"], pretrained=False).eval()
        config = dict(net.pretrained_cfg)
    else:
        import torchvision
        net = getattr(torchvision.models, item["arch"])(weights=None).eval()
        config = None
    x = torch.rand(1, 3, item["size"], item["size"])
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if item["dynamic"] else None
    torch.onnx.export(net, x, item["path"], dynamo=False, input_names=["input"], output_names=["logits"],
                      dynamic_axes=axes, opset_version=17)
    if config is not None:
        model = onnx.load(item["path"])
        onnx.helper.set_model_props(model, {"pretrained_cfg": json.dumps(config, default=str)})
        onnx.save(model, item["path"])
'''


def plain_path(work: Path, family: Family) -> Path:
    return work / "plain" / f"{family.name}.onnx"


def make_plain(work: Path, families: list[Family], timeout: float = 900) -> None:
    """Every family's plain model that is not in ``work`` yet."""
    (work / "plain").mkdir(parents=True, exist_ok=True)
    todo = [f for f in families if not plain_path(work, f).exists()]
    env = dict(os.environ, YOLO_OFFLINE="1", YOLO_VERBOSE="False", YOLO_CONFIG_DIR=str(work / "ultralytics-settings"),
               TF_CPP_MIN_LOG_LEVEL="2")
    v8 = [f for f in todo if f.arch == "yolov8n.yaml"]
    if v8:
        from export.zoo.yolo import export_yolov8n

        made = export_yolov8n(work / "yolov8n", [((f.size, f.size), f.dynamic) for f in v8])
        for f, path in zip(v8, made):
            os.replace(path, plain_path(work, f))
    torch_made = [{"exporter": f.exporter, "arch": f.arch, "size": f.size, "dynamic": f.dynamic,
                   "path": str(plain_path(work, f))} for f in todo if f.exporter in ("ultralytics", "timm",
                                                                                      "torchvision")
                  and f not in v8]
    if torch_made:
        done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(torch_made)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"export failed: {' '.join(done.stderr.split()[-80:])}")
    for f in todo:
        if f.exporter == "face":
            from edge.faces import face_model

            plain_path(work, f).write_bytes(face_model().read_bytes())
        elif f.exporter == "palm":
            python, tflite = SHARE / "tf2onnx" / "bin" / "python", SHARE / "palm_detection_lite.tflite"
            done = subprocess.run([str(python), "-m", "tf2onnx.convert", "--tflite", str(tflite), "--output",
                                   str(plain_path(work, f))], capture_output=True, text=True, timeout=timeout,
                                  env=env)
            if done.returncode != 0:
                raise RuntimeError(f"tf2onnx failed: {' '.join(done.stderr.split()[-60:])}")


# -- one family: keyify, verify, time -----------------------------------------------------------------------------

@dataclass
class Row:
    family: Family
    policy: str
    accepted: str = ""
    refused: str = ""
    compile_s: float = 0.0
    report: VerifyReport | None = None
    keyed_ms: float = float("nan")
    plain_ms: float = float("nan")


def _batch_text(plain: onnx.ModelProto) -> str:
    first = plain.graph.input[0].type.tensor_type.shape.dim[0]
    return f"batch {first.dim_value}" if first.dim_value else "dynamic batch"


def _compile(family: Family, plain: Path, key: MasterKey, work: Path) -> list[Row]:
    rows = []
    size = (family.size, family.size) if family.dynamic else None
    for policy in POLICIES:
        row = Row(family, policy)
        start = time.perf_counter()
        try:
            result = keyify(str(plain), key, KeyifyOptions(policy=policy, size=size, **family.options))
        except KeycamError as error:
            row.refused = " ".join(str(error).split())
        else:
            row.compile_s = time.perf_counter() - start
            save(result, work / "keyed" / f"{family.name}-{policy}.onnx")
        rows.append(row)
    return rows


def _verify(rows: list[Row], plain: Path, key: MasterKey, work: Path) -> None:
    photos = [shipped_photo(name) for name in PHOTOS]
    for row in rows:
        if row.refused:
            continue
        keyed = work / "keyed" / f"{row.family.name}-{row.policy}.onnx"
        try:
            row.report = verify(plain, keyed, key, photos, settings=row.family.settings)
        except KeycamError as error:
            row.refused = "verify refused it: " + " ".join(str(error).split())


def _time(rows: list[Row], plain: Path, key: MasterKey, work: Path, reps: int, threads: int) -> None:
    """Plain and keyed sessions timed in one interleaved run, on the first photo's frame, batch 1 (or the model's)."""
    accepted = [r for r in rows if not r.refused]
    if not accepted:
        return
    keyed = {r.policy: work / "keyed" / f"{r.family.name}-{r.policy}.onnx" for r in accepted}
    manifest = Manifest.from_json((work / "keyed" / f"{rows[0].family.name}-{accepted[0].policy}.manifest.json")
                                  .read_text())
    readout = Readout.for_model(manifest, key)
    image = __import__("cv2").imread(str(shipped_photo(PHOTOS[0])))
    frames = np.stack([prepare_frame(image, readout, Path("photo.png"))] * (manifest.batch or 1))
    measured = np.stack([readout.measure(f, manifest.epoch) for f in frames])
    plain_session = session(plain, threads)
    runs = {"plain": (plain_session, {plain_session.get_inputs()[0].name: plain_input(frames, manifest)})}
    for policy, path in keyed.items():
        s = session(path, threads)
        runs[policy] = (s, {s.get_inputs()[0].name: measured})
    medians = interleaved(runs, reps)
    for r in accepted:
        r.plain_ms, r.keyed_ms = medians["plain"], medians[r.policy]


# -- the table ----------------------------------------------------------------------------------------------------

def _raw(report: VerifyReport) -> str:
    moved = sum(c.moved for c in report.outputs)
    text = f"{report.max_rel_diff:.1e}" + ("" if report.raw_exact else " NOT EXACT")
    return text + (f" ({moved} near-tied top-k rows in another order)" if moved else "")


def _decoded(report: VerifyReport) -> str:
    verdict = report.lines()[-1][1]
    if report.not_decoded:
        return f"{verdict}: {report.not_decoded}"
    found = re.search(r": (\w+) decoder", report.decoder)
    decoder = found.group(1) if found else report.decoder
    counted = ", ".join(f"top-1 class and score on {c.compared} frames" if c.classifier else f"{c.compared} {c.kind}"
                        for c in report.answers if c.kind != "counts")
    flips = [f"{n} {reason}" for c in report.answers for reason, n in c.flips.items()]
    text = f"{verdict}: `{decoder}`, {counted or 'nothing'} compared"
    if flips:
        text += f" (in one answer only, not counted: {', '.join(flips)})"
    if report.refused:
        text += f"; {report.refused} of {report.images} frames refused alike"
    if not report.exact:
        text += "; " + "; ".join(f"{c.kind}: {c.first_problem}" for c in report.answers if c.first_problem)
    return text


def table(rows: list[Row], plains: dict[str, onnx.ModelProto]) -> list[str]:
    lines = ["| model (exporter, input, batch) | policy | accepted | exact raw (max rel. diff) | exact decoded "
             "(verify) | plain ms | keyed ms | keyed / plain | answers = ultralytics `predict` |",
             "|---|---|---|---|---|---|---|---|---|"]
    exporters = {"ultralytics": "ultralytics", "timm": "timm, torch.onnx", "torchvision": "torchvision, torch.onnx",
                 "face": "tflite2onnx", "palm": "tf2onnx"}
    for row in rows:
        f = row.family
        model = f"{f.model} ({exporters[f.exporter]}, {f.size}, {_batch_text(plains[f.name])})"
        if row.refused:
            lines.append(f"| {model} | `{row.policy}` | refused: {row.refused} | - | - | - | - | - | {f.predict} |")
            continue
        r = row.report
        ratio = row.keyed_ms / row.plain_ms
        lines.append(f"| {model} | `{row.policy}` | yes ({row.compile_s:.1f} s) | {_raw(r)} | {_decoded(r)} | "
                     f"{row.plain_ms:.2f} | {row.keyed_ms:.2f} | {ratio:.2f} | {f.predict} |")
    return lines


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("ultralytics", "torch", "timm", "torchvision", "tflite2onnx"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return ", ".join(found) + " (tf2onnx: its own environment, " + str(SHARE / "tf2onnx") + ")"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=50, help="interleaved repetitions (a family's own, if fewer)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated family names (default: all)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "keycam-model-families",
                        help="where the plain models are kept between runs, and the keyed ones written")
    args = parser.parse_args()
    wanted = set(filter(None, args.only.split(",")))
    unknown = wanted - {f.name for f in FAMILIES}
    if unknown:
        parser.error(f"unknown families {sorted(unknown)}; choose among {', '.join(f.name for f in FAMILIES)}")
    families = [f for f in FAMILIES if not wanted or f.name in wanted]
    started, load_before = time.perf_counter(), Path("/proc/loadavg").read_text().split()[:3]
    began = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    (args.work / "keyed").mkdir(parents=True, exist_ok=True)
    make_plain(args.work, families)
    exported = time.perf_counter() - started
    key = MasterKey(bytes(range(32)))  # a fixed key: the run can be repeated
    rows, plains = [], {}
    for family in families:
        plain = plain_path(args.work, family)
        plains[family.name] = onnx.load(str(plain), load_external_data=False)
        t0 = time.perf_counter()
        these = _compile(family, plain, key, args.work)
        _verify(these, plain, key, args.work)
        reps = min(args.reps, family.reps or args.reps)
        _time(these, plain, key, args.work, reps, args.threads)
        rows += these
        print(f"  {family.name}: {time.perf_counter() - t0:.0f} s, " + ", ".join(
            f"{r.policy} {'refused' if r.refused else f'{r.keyed_ms / r.plain_ms:.2f}x'}" for r in these),
            file=sys.stderr, flush=True)
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    total = time.perf_counter() - started
    reps_note = ", ".join(dict.fromkeys(f"{f.model} at {f.size}: {f.reps}" for f in families
                                        if f.reps and f.reps < args.reps))
    print(f"Run on {began}; machine: {platform.machine()}, "
          f"{os.cpu_count()} cores, {_cpu()}; Python {platform.python_version()}, onnxruntime {ort.__version__}, "
          f"onnx {onnx.__version__}; exporters: {_versions()}")
    print(f"command: python benchmarks/model_families.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"load average (1, 5, 15 min) before {' '.join(load_before)}, after {' '.join(load_after)}; "
          f"{total / 60:.1f} min in all ({exported / 60:.1f} exporting)")
    print(f"latency: onnxruntime CPU, {args.threads} threads, batch 1, median of {args.reps} interleaved repetitions"
          + (f" ({reps_note})" if reps_note else "") + "\n")
    for line in table(rows, plains):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
