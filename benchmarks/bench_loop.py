"""Benchmark: end-to-end replay fps of the capture loop, keyed against plain.

The same loop (``edge.loop.CaptureLoop``), source (an image folder of frames at the model's size) and
sink (JSON-lines results to /dev/null): once with the keyed pipeline (ADC transform + keyed model),
once with the plain model and no transform (the frames normalised as the plain model wants them).
Median fps of 3 runs each, interleaved; the keyed run's per-stage mean times. Target: keyed fps >=
0.9x plain.

    python benchmarks/bench_loop.py [--frames 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.default import ASSET, MEAN as FM_MEAN, STD as FM_STD  # noqa: E402
from edge.loop import CaptureLoop  # noqa: E402
from edge.frame import Frame, Result  # noqa: E402
from edge.pipeline import Pipeline  # noqa: E402
from edge.runtime import KeyedModel, open_session  # noqa: E402
from edge.sensor import to_sensor  # noqa: E402
from edge.sinks.results import ResultsSink  # noqa: E402
from edge.sources.folder import FolderSource  # noqa: E402
from edge.tasks import summarise  # noqa: E402
from export.keyify import KeyifyOptions, keyify  # noqa: E402
from export.package.save import save  # noqa: E402
from export.zoo import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD, resnet18, resnet20  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from firmware_sim.spec import PRESETS  # noqa: E402


class PlainPipeline:
    """The baseline: the same frame preparation, no ADC transform, the plain model."""

    def __init__(self, path: Path, spec, mean, std, height: int, width: int) -> None:
        self.session = open_session(path)
        self.name = self.session.get_inputs()[0].name
        self.spec, self.height, self.width = spec, height, width
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)

    def front(self, frame: Frame) -> Result:
        timings = {}
        start = time.perf_counter()
        image = to_sensor(frame.image, self.spec, self.height, self.width, "bgr", "rgb")
        x = ((image.astype(np.float32) - self.mean) / self.std).transpose(2, 0, 1)[np.newaxis]  # (1, C, H, W)
        timings["prepare"] = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        logits = self.session.run(None, {self.name: np.ascontiguousarray(x)})
        timings["model"] = (time.perf_counter() - start) * 1e3
        return Result(frame.replace(image=image), latency_ms=timings, tensors=logits)

    def back(self, result: Result) -> Result:
        result.outputs = {"logits": summarise("logits", result.tensors[0], "plain", None)}
        return result


def fps(source_dir: Path, pipeline) -> tuple[float, dict]:
    with open(os.devnull, "w") as null:
        loop = CaptureLoop(FolderSource(source_dir), pipeline, [ResultsSink(null, include_latency=False)])
        metrics = loop.run()
    return metrics.fps, metrics.summary()["stage_ms_mean"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    key = MasterKey.generate()
    cases = [
        ("fashion-mnist-cnn 28x28", onnx.load(ASSET), PRESETS["gray8"], FM_MEAN, FM_STD, 28, 28),
        ("resnet20 32x32", resnet20(), PRESETS["rgb8"], CIFAR_MEAN, CIFAR_STD, 32, 32),
        ("resnet18 224x224", resnet18(), PRESETS["rgb8"], IMAGENET_MEAN, IMAGENET_STD, 224, 224),
    ]
    print(f"Run on {date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, {args.frames} frames, "
          f"median of 3 runs\n")
    print("| model | policy | plain fps | keyed fps | keyed / plain | keyed: transform ms | keyed: model ms |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, plain, spec, mean, std, height, width in cases:
            frames = folder / name.split()[0]
            frames.mkdir()
            rng = np.random.default_rng(0)
            count = args.frames if height < 100 else max(20, args.frames // 10)
            for i in range(count):
                cv2.imwrite(str(frames / f"f{i:04d}.png"), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
            plain_path = folder / f"{frames.name}.onnx"
            onnx.save(plain, plain_path)
            baseline = PlainPipeline(plain_path, spec, mean, std, height, width)
            for policy in ("fresh", "boundary"):
                keyed_path = folder / f"{frames.name}-{policy}.onnx"
                save(keyify(plain, key, KeyifyOptions(policy=policy, spec=spec, mean=mean, std=std)), keyed_path)
                keyed = Pipeline(KeyedModel(keyed_path, key), key)
                plain_runs, keyed_runs, stages = [], [], {}
                for _ in range(3):
                    plain_runs.append(fps(frames, baseline)[0])
                    value, stages = fps(frames, keyed)
                    keyed_runs.append(value)
                p, k = statistics.median(plain_runs), statistics.median(keyed_runs)
                print(f"| {name} | {policy} | {p:.1f} | {k:.1f} | {k / p:.2f} | {stages.get('transform', 0):.3f} | "
                      f"{stages.get('model', 0):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
