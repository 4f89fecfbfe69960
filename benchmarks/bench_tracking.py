"""Benchmark: what tracking (``[events]``: the tracker, the objects' lifecycle, zones) costs per frame, against the
decode it follows.

1. Real videos through keyed detectors, frame by frame in one thread (each frame's model, decode, then tracking),
   median milliseconds per frame of the decode (restore, decoder + NMS) and of the tracking stage
   (``edge.events.Tracking``, two zones), and detections per frame:
   - Megamind.avi (720 x 528, 270 frames) through the shipped face detector (BlazeFace, 128 x 128), keyed;
   - vtest.avi (768 x 576, the first N frames) through ultralytics' YOLOv8n export at 320 x 320 (random weights made
     to detect, a threshold that keeps tens of boxes a frame), keyed, when ultralytics is installed.
2. Synthetic scenes: N people walking (N = 1 ... 50), 300 frames; the tracker alone (``edge.events.tracker``: one
   ``trackers`` update a frame) and the whole stage, ByteTrack and OC-SORT; median per frame.

Each frame's time is the least over ``--reps`` passes over the same frames (a stateful stage is built afresh for
each pass, so it sees the same sequence), then the median over the frames: a busy machine's spikes do not count.

    python benchmarks/bench_tracking.py [--vtest-frames 200] [--reps 3]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from edge.config import Config
from edge.events import Tracking
from edge.events.tracker import Tracker
from edge.events.zones import ZoneConfig
from edge.frame import Frame, Result
from edge.job import build_job
from edge.sinks.events import EventsConfig
from edge.sources.video import VideoConfig
from edge.tasks import TaskConfig
from firmware_sim.keys import MasterKey

VIDEOS = Path("/usr/share/doc/opencv-doc/examples/data")


def _halves(width: int, height: int) -> dict[str, ZoneConfig]:
    half = width / 2
    return {"left": ZoneConfig(coordinates=[[0, 0], [half, 0], [half, height], [0, height]]),
            "right": ZoneConfig(coordinates=[[half, 0], [width, 0], [width, height], [half, height]])}


def _timed(step, items: list, reps: int, fresh=None) -> list[float]:
    """Per item, the least milliseconds ``step(item)`` took over ``reps`` passes over all of them (``fresh()`` before
    each pass: a stage that keeps state sees the same sequence every time), so that a busy machine's spikes do not
    count."""
    best = [float("inf")] * len(items)
    for _ in range(reps):
        state = fresh() if fresh is not None else None
        for i, item in enumerate(items):
            start = time.perf_counter()
            step(state, item)
            best[i] = min(best[i], (time.perf_counter() - start) * 1e3)
    return best


def _replay(config: Config, frames: int, reps: int) -> dict:
    """The video's frames through the job's keyed model once; then its decode and its tracking stage, each frame's
    least time over ``reps`` passes: medians over the frames, detections a frame, objects tracked."""
    job = build_job(config, replay=True)
    staged = []
    with job.source as source:
        for frame in source:
            staged.append(job.pipeline.front(frame))
            if frames and len(staged) >= frames:
                break
    answers = job.pipeline.answers
    decode = _timed(lambda _, r: answers(r.tensors, r.frame), staged, reps)
    outputs = [answers(r.tensors, r.frame) for r in staged]
    results = [[Result(r.frame, copy.deepcopy(o)) for r, o in zip(staged, outputs)] for _ in range(reps)]
    passes = iter(results)
    counts = {}

    def fresh():
        counts["stage"] = Tracking(config.events, config.zones)
        return counts["stage"], iter(next(passes))

    track = _timed(lambda state, _: state[0](next(state[1])), staged, reps, fresh)
    found = [len(o.get("detections", [])) for o in outputs]
    return {"frames": len(staged), "detections": statistics.mean(found), "decode": statistics.median(decode),
            "track": statistics.median(track), "objects": counts["stage"].counts["new"]}


def _config(video: str, model: Path, key_file: Path, task: TaskConfig, zones: dict) -> Config:
    config = Config(events=EventsConfig(enabled=True), zones=zones, task=task)
    config.source = VideoConfig(path=str(VIDEOS / video))
    config.model.path, config.model.key = str(model), str(key_file)
    config.results.path = os.devnull
    return config


def real_videos(folder: Path, vtest_frames: int, reps: int) -> list[tuple[str, dict]]:
    from edge import default
    from edge.faces import task_settings

    key = MasterKey.generate()
    key.save(folder / "bench.key")
    rows = []
    faces = default.default_detector(folder, key)
    rows.append(("Megamind.avi, BlazeFace 128x128", _replay(
        _config("Megamind.avi", faces, folder / "bench.key", task_settings(), _halves(720, 528)), 0, reps)))
    from export.zoo.yolo import available, export_yolov8n

    if available():
        import onnx

        from export.keyify import KeyifyOptions, keyify
        from export.package.save import save

        plain = export_yolov8n(folder / "yolo", [((320, 320), False)])[0]
        save(keyify(onnx.load(plain), key, KeyifyOptions(std=(255.0,))), folder / "yolo.onnx")
        task = TaskConfig(score_threshold=0.8)
        rows.append((f"vtest.avi, YOLOv8n 320x320 (random, {vtest_frames} frames)", _replay(
            _config("vtest.avi", folder / "yolo.onnx", folder / "bench.key", task, _halves(768, 576)), vtest_frames, reps)))
    return rows


def _walkers(count: int, frames: int, seed: int = 0) -> list[list[dict]]:
    """``count`` people walking in a 1280 x 720 frame (boxes 40 x 100, 0 to 4 px a frame), 3 % of them missed a
    frame; detections as the decoders give them."""
    rng = np.random.default_rng(seed)
    start = rng.uniform([0, 0], [1240, 620], (count, 2))
    velocity = rng.uniform(-4, 4, (count, 2))
    scenes = []
    for t in range(frames):
        corner = np.mod(start + velocity * t, [1240, 620])
        boxes = np.concatenate([corner, corner + [40, 100]], axis=1)
        kept = rng.random(count) > 0.03
        scenes.append([{"box": [round(float(v), 2) for v in box], "score": 0.9, "label": 0, "class": "person"}
                       for box in boxes[kept]])
    return scenes


def synthetic(counts: list[int], frames: int, reps: int) -> list[tuple[str, int, float, float]]:
    rows = []
    for kind in ("bytetrack", "ocsort"):
        for count in counts:
            scenes = _walkers(count, frames)
            arrays = [(np.asarray([d["box"] for d in s], np.float64).reshape(-1, 4), np.full(len(s), 0.9),
                       ["person"] * len(s)) for s in scenes]
            alone = _timed(lambda tracker, a: tracker.update(*a, 0.0), arrays, reps,
                           lambda kind=kind: Tracker(kind, end_after_frames=30))
            results = [[Result(Frame(None, i, i * 33_333_333, "bench"), {"detections": copy.deepcopy(s)})
                        for i, s in enumerate(scenes)] for _ in range(reps)]
            passes = iter(results)

            def fresh(kind=kind, passes=passes):
                stage = Tracking(EventsConfig(enabled=True, tracker=kind, end_after_frames=30), _halves(1280, 720))
                return stage, iter(next(passes))

            stage = _timed(lambda state, _: state[0](next(state[1])), scenes, reps, fresh)
            rows.append((kind, count, statistics.median(alone), statistics.median(stage)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vtest-frames", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    print(f"# {date.today()}, {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        print("| video, detector | frames | detections a frame | objects | decode ms | tracking ms | tracking / decode |")
        print("|---|---|---|---|---|---|---|")
        for name, row in real_videos(Path(tmp), args.vtest_frames, args.reps):
            print(f"| {name} | {row['frames']} | {row['detections']:.1f} | {row['objects']} | {row['decode']:.2f} | "
                  f"{row['track']:.2f} | {row['track'] / row['decode']:.1f} |")
    print()
    print("| tracker | people in view | tracker alone ms | whole stage ms |")
    print("|---|---|---|---|")
    for kind, count, alone, stage in synthetic([1, 5, 10, 25, 50], 300, args.reps):
        print(f"| {kind} | {count} | {alone:.2f} | {stage:.2f} |")


if __name__ == "__main__":
    main()
