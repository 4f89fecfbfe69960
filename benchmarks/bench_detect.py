"""Benchmark: end-to-end detection replay through the capture loop, and what decoding and NMS cost per frame.

For each detector (the shipped BlazeFace face detector at 128x128; YOLOv8n at 320x320 when ultralytics is
installed: ultralytics' own export, random weights, a threshold that keeps about 100 candidates), keyed
under the given policies, the loop replays a folder of package-shipped photos (repeated
to N frames) as fast as it can, results to /dev/null, in one process; reported: frames per second, the
mean milliseconds of the model and of the decode stage (restore, decoder + NMS, ``edge.tasks``) per frame in
the loop; then the same two stages measured alone (each frame's model, then its decode, in one thread with
no source thread beside them: the median per frame), and their ratio (target: decode + NMS <= 5 % of the
model). Median of the repetitions.

    python benchmarks/bench_detect.py [--frames 200] [--reps 5] [--policies boundary,fresh]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from datetime import date
from pathlib import Path

import cv2

from edge.config import Config
from edge.faces import MEAN, SPEC, STD, face_model, task_settings
from edge.job import build_job
from edge.lab.demo import shipped_photo
from edge.sources.folder import FolderConfig
from edge.tasks import TaskConfig
from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from firmware_sim.keys import MasterKey

PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "motorcycle_left")


def _photos(folder: Path, count: int) -> Path:
    folder.mkdir()
    pictures = [cv2.imread(str(shipped_photo(name)), cv2.IMREAD_COLOR) for name in PHOTOS]
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:05d}.png"), pictures[i % len(pictures)])
    return folder


def _yolo(folder: Path, size: int) -> Path | None:
    """ultralytics' own YOLOv8n export at size x size, fixed batch (export/zoo/yolo.py; random weights)."""
    from export.zoo.yolo import available, export_yolov8n

    if not available():
        return None
    return export_yolov8n(folder / "yolo", [((size, size), False)])[0]


def _yolo_threshold(plain: Path, frames: Path, size: int) -> float:
    """The score of the 100th best candidate on the first frame: random weights score every anchor alike, and a
    trained model's usual 0.25 would hand NMS thousands of boxes; this keeps the tens a trained one gives."""
    import numpy as np
    import onnxruntime as ort

    image = cv2.resize(cv2.imread(str(sorted(frames.iterdir())[0])), (size, size))[:, :, ::-1]
    x = np.ascontiguousarray((image.astype(np.float32) / 255).transpose(2, 0, 1)[np.newaxis])  # (1, 3, S, S)
    session = ort.InferenceSession(str(plain), providers=["CPUExecutionProvider"])
    scores = session.run(None, {session.get_inputs()[0].name: x})[0][0, 4:].max(axis=0)
    return float(np.sort(scores)[-100])


def _config(model: Path, key_file: Path, frames: Path, task: TaskConfig) -> Config:
    config = Config()
    config.source = FolderConfig(path=frames)
    config.model.path, config.model.key, config.model.threads = str(model), str(key_file), 1
    config.task = task
    config.results.path = os.devnull
    return config


def _run(config: Config) -> tuple[float, float, float]:
    """The replay through the capture loop: fps, and the mean model and decode stage milliseconds."""
    summary = build_job(config, replay=True).run()
    stages = summary["stage_ms_mean"]
    return summary["fps"], stages.get("model", 0.0), stages.get("decode", 0.0)


def _alone(config: Config) -> tuple[float, float, float]:
    """The model and the decode stage (restore, decoder, NMS) of each frame, one after the other in this thread
    with nothing else running: median milliseconds per frame. In the loop the source's thread reads and fits
    the next frame meanwhile, and holds the interpreter's lock for part of the decode stage's Python. Then the
    decode stage again over the same frames' outputs, back to back ("warm": its code and data in the caches,
    which the model's run has just flushed when it follows the model)."""
    job = build_job(config, replay=True)
    model_ms, decode_ms, fronts = [], [], []
    with job.source:
        for frame in job.source:
            front = job.pipeline.front(frame)
            tensors = list(front.tensors)
            result = job.pipeline.back(front)
            model_ms.append(result.latency_ms["model"])
            decode_ms.append(result.latency_ms["decode"])
            fronts.append((front, tensors))
    warm = []
    for front, tensors in fronts:
        front.tensors = tensors
        warm.append(job.pipeline.back(front).latency_ms["decode"])
    return statistics.median(model_ms), statistics.median(decode_ms), statistics.median(warm)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--policies", default="boundary,fresh")
    args = parser.parse_args()
    key = MasterKey.generate()
    print(f"Run on {date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, {args.frames} frames, "
          f"median of {args.reps} runs, onnxruntime on 1 thread\n")
    print("| detector | policy | replay fps | in the loop: model ms | decode + NMS ms | alone: model ms | "
          "decode + NMS ms | decode / model (alone) | decode + NMS warm ms | warm / model |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        key.save(folder / "k.key")
        frames = _photos(folder / "frames", args.frames)
        cases = [("BlazeFace 128x128", face_model(), KeyifyOptions(spec=SPEC, mean=MEAN, std=STD), task_settings())]
        yolo = _yolo(folder, 320)
        if yolo is not None:
            threshold = _yolo_threshold(yolo, frames, 320)
            cases.append(("YOLOv8n 320x320", yolo, KeyifyOptions(mean=(0, 0, 0), std=(255, 255, 255)),
                          TaskConfig(kind="detect", decoder="yolo", score_threshold=threshold)))
        for name, plain, options, task in cases:
            for policy in args.policies.split(","):
                keyed = folder / f"{name.split()[0]}-{policy}.onnx"
                try:
                    save(keyify(plain, key, KeyifyOptions(**{**options.__dict__, "policy": policy})), keyed)
                except Exception as error:  # noqa: BLE001 - a policy the compiler refuses for this model
                    print(f"| {name} | {policy} | refused: {str(error).splitlines()[0]} | | | |")
                    continue
                config = _config(keyed, folder / "k.key", frames, task)
                runs = [_run(config) for _ in range(args.reps)]
                fps, model_ms, decode_ms = (statistics.median(r[i] for r in runs) for i in range(3))
                alone = [_alone(config) for _ in range(args.reps)]
                model_alone, decode_alone, warm = (statistics.median(r[i] for r in alone) for i in range(3))
                print(f"| {name} | {policy} | {fps:.1f} | {model_ms:.2f} | {decode_ms:.3f} | {model_alone:.2f} | "
                      f"{decode_alone:.3f} | {decode_alone / model_alone:.1%} | {warm:.3f} | {warm / model_alone:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
