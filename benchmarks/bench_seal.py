"""What the sealed readout costs: sealing at the sensor plus opening before the model, per frame, against the readout's
own gather (a bare np.take of the frame) and against a keyed model; and replay fps sealed against unsealed.

Part 1 times, interleaved in one run (median of ``--reps`` repetitions, each in a shuffled order), for 320x320 and VGA
(640x480) frames, RGB (8-bit, 3 codes a position) and Bayer (10-bit BGGR cells, 4 codes of 2 bytes):
seal + open with AES-256-GCM and with ChaCha20-Poly1305 (edge/seal.py: Sealer.seal, Opener.open), and
``np.take`` of the frame's positions (the permutation alone). Part 2 replays opencv-doc's vtest.avi (100 frames)
through a keyed ResNet-18-style classifier at 224x224, as `keycam replay` does, under rgb8 and rgb8-sealed (the same
model compiled for each spec), interleaved runs, and gives the fps ratio.

Run: python benchmarks/bench_seal.py [--reps 200] [--frames 100]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.frame import Frame  # noqa: E402
from edge.memory import keep_frame_memory  # noqa: E402
from edge.seal import Opener, Sealer  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from firmware_sim.spec import PRESETS  # noqa: E402

VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def time_ops(ops: dict, reps: int) -> dict[str, float]:
    """Median ms of each ``{label: callable}``, interleaved in shuffled order."""
    for op in ops.values():
        op()
    times = {label: [] for label in ops}
    order, shuffle = list(ops), random.Random(0).shuffle
    for _ in range(reps):
        shuffle(order)
        for label in order:
            start = time.perf_counter()
            ops[label]()
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(t) * 1e3 for label, t in times.items()}


def part1(key: MasterKey, reps: int) -> None:
    print("| frame | codes | seal + open, AES-256-GCM ms | seal + open, ChaCha20-Poly1305 ms | np.take ms |")
    print("|---|---|---|---|---|")
    cases = [("320x320", (320, 320), "rgb8", 3), ("VGA 640x480", (480, 640), "rgb8", 3),
             ("320x320", (160, 160), "bggr10", 4), ("VGA 640x480", (240, 320), "bggr10", 4)]
    rng = np.random.default_rng(0)
    for name, (height, width), base, channels in cases:
        dtype = np.uint8 if base == "rgb8" else np.uint16
        codes = rng.integers(0, 1 << (8 if base == "rgb8" else 10), (height, width, channels)).astype(dtype)
        frame = Frame(codes, 0, 0, "bench", measured=True)
        order = rng.permutation(height * width)
        rows = codes.reshape(-1, channels)  # (H, W, C) -> (HW, C)
        ops = {"take": lambda r=rows, o=order: np.take(r, o, axis=0)}
        for aead in ("aes", "chacha"):
            spec = PRESETS[f"{'rgb8' if base == 'rgb8' else 'bggr10'}-sealed" + ("-chacha" if aead == "chacha" else "")]
            sealer = Sealer(key, spec)
            opener = Opener(key, spec, window=1 << 30)

            def seal_open(s=sealer, o=opener, f=frame, c=codes):
                data, seal = s.seal(c, f, 0)
                o.open(f.replace(image=data, seal=seal))

            ops[aead] = seal_open
        ms = time_ops(ops, reps)
        kind = "RGB, 8-bit" if base == "rgb8" else "Bayer cells, 10-bit"
        print(f"| {name} | {kind} ({codes.nbytes / 1e6:.2f} MB) | {ms['aes']:.3f} | {ms['chacha']:.3f} | "
              f"{ms['take']:.3f} |")


def part2(key: MasterKey, frames: int, rounds: int) -> None:
    import cv2

    from edge.config import Config
    from edge.job import build_job
    from edge.sources.folder import FolderConfig
    from export.keyify import KeyifyOptions, keyify
    from export.package.save import save
    from export.zoo import IMAGENET_MEAN, IMAGENET_STD, resnet18

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "frames").mkdir()
        capture = cv2.VideoCapture(str(VIDEO))
        for i in range(frames):
            ok, image = capture.read()
            if not ok:
                sys.exit(f"{VIDEO} is missing or short: apt-get install opencv-doc")
            cv2.imwrite(str(folder / "frames" / f"f{i:04d}.png"), image)
        key.save(folder / "k.key")
        for name in ("rgb8", "rgb8-sealed"):
            options = KeyifyOptions(spec=PRESETS[name], mean=IMAGENET_MEAN, std=IMAGENET_STD)
            save(keyify(resnet18(), key, options), folder / f"{name}.onnx")
        fps = {"rgb8": [], "rgb8-sealed": []}
        for _ in range(rounds):
            for name in random.sample(list(fps), 2):
                config = Config()
                config.source = FolderConfig(path=folder / "frames")
                config.model.path, config.model.key = str(folder / f"{name}.onnx"), str(folder / "k.key")
                config.results.path = os.devnull
                fps[name].append(build_job(config, replay=True).run()["fps"])
        plain, sealed = statistics.median(fps["rgb8"]), statistics.median(fps["rgb8-sealed"])
        print(f"\nreplay of {frames} frames of vtest.avi (768x576) through a keyed ResNet-18 at 224x224, median of "
              f"{rounds} interleaved runs: rgb8 {plain:.1f} fps, rgb8-sealed {sealed:.1f} fps, sealed / unsealed "
              f"{sealed / plain:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    keep_frame_memory()  # as every keycam command does (edge.memory): frames reuse warm pages
    key = MasterKey.generate()
    load = open("/proc/loadavg").read().split()[:3]
    print(f"Run on {date.today().isoformat()}, {platform.machine()}, {cpu()}, {os.cpu_count()} cores, load "
          f"{' '.join(load)}; median of {args.reps} interleaved repetitions\n")
    part1(key, args.reps)
    part2(key, args.frames, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
