"""Benchmark: what recordings cost on disk and in time, on real measurements.

The first N frames of OpenCV's ``vtest.avi`` (768x576, people walking; Debian's opencv-doc) read out as a keyed
model at 320x320 reads them (``edge.sensor.Readout``: the model's framing, the keyed order), for each readout spec
and framing, recorded by ``edge.recording.Recorder`` with zstd chunks, lz4 chunks and uncompressed ones; reported:
the file's size against the codes' own bytes (the ratio), the milliseconds a frame takes to record (the mean CPU
time of the recording thread, which a busy machine does not inflate as it does wall time: serialising,
compressing, CRCs, writing; the recorder runs in the loop's calling thread), what an hour at 15 fps
fills, and how long 2 GB lasts. Then, for rgb8, the chunk size against the ratio (with one key epoch and with a new
one every frame), and the alternative the format declined: Foxglove's RawImage as JSON (codes in base64),
compressed the same way.

    python benchmarks/bench_recording.py [--frames 300] [--video PATH]
"""

from __future__ import annotations

import argparse
import base64
import json
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
import zstandard

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from edge.frame import Frame, Result  # noqa: E402
from edge.recording import Recorder  # noqa: E402
from edge.sensor import Readout  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from firmware_sim.spec import PRESETS  # noqa: E402

VIDEO = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
SPECS = ("rgb8", "gray8", "rgb10", "rgb12", "bayer12", "bayer12to8")
FITS = {"crop": 0.0, "letterbox": 114 / 255}  # keycam's framing; ultralytics' (its pad value, 114)
FPS, BUDGET = 15, 2 * 10**9


def _video(path: str, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(path)
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    if not frames:
        sys.exit(f"cannot read {path} (Debian's opencv-doc ships it)")
    return frames


def _record(folder: Path, measurements: list[np.ndarray], spec, compression: str,
            chunk_size: int = 256 * 1024) -> tuple[int, float]:
    """(file bytes, mean ms a frame) of one recording of ``measurements`` (empty detector answers with them); the
    mean, since a frame's cost is mostly the chunk it closes, and small frames close one every few frames."""
    path = folder / f"{compression}.mcap"
    times = []
    with Recorder(path, spec, "kc1:bench", compression=compression, force=True, fit="letterbox",
                  chunk_size=chunk_size) as recorder:
        for i, codes in enumerate(measurements):
            result = Result(Frame(codes, i, i * 66_666_667, "vtest", measured=True, source_size=(768, 576)),
                            outputs={"detections": [], "counts": {}})
            start = time.thread_time()
            recorder.record(result)
            times.append((time.thread_time() - start) * 1e3)
    return path.stat().st_size, statistics.fmean(times)


def _chunks(frames: list[np.ndarray], key) -> None:
    """rgb8, crop: the chunk size against the ratio, with one key epoch (a still camera's background, permuted
    alike, repeats from frame to frame) and with a new epoch every frame (it never does)."""
    spec = PRESETS["rgb8"]
    readout = Readout(key, spec, 320, 320)
    print("\n| chunk | one key epoch: ratio | ms a frame | a new epoch every frame: ratio |")
    print("|---|---|---|---|")
    still = [readout.measure(readout.prepare(f), 0) for f in frames]
    moving = [readout.measure(readout.prepare(f), i) for i, f in enumerate(frames)]
    raw = sum(m.nbytes for m in still)
    with tempfile.TemporaryDirectory() as scratch:
        for kib in (256, 1024, 4096):
            size, ms = _record(Path(scratch), still, spec, "zstd", kib * 1024)
            rotated, _ = _record(Path(scratch), moving, spec, "zstd", kib * 1024)
            print(f"| {kib} KiB | {size / raw:.3f} | {ms:.2f} | {rotated / raw:.3f} |")


def _json_alternative(measurements: list[np.ndarray]) -> tuple[float, float]:
    """(compressed bytes / codes' bytes, mean ms a frame) of RawImage as JSON, base64 codes, zstd level 3."""
    compressor, sizes, times = zstandard.ZstdCompressor(level=3), 0, []
    for codes in measurements:
        start = time.thread_time()
        text = json.dumps({"timestamp": {"sec": 0, "nsec": 0}, "frame_id": "keycam", "width": codes.shape[1],
                           "height": codes.shape[0], "encoding": "rgb8", "step": codes.shape[1] * 3,
                           "data": base64.b64encode(codes.tobytes()).decode()}).encode()
        sizes += len(compressor.compress(text))
        times.append((time.thread_time() - start) * 1e3)
    return sizes / sum(m.nbytes for m in measurements), statistics.fmean(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--video", default=VIDEO)
    args = parser.parse_args()
    frames = _video(args.video, args.frames)
    key = MasterKey.generate()
    print(f"Run on {date.today()}, {platform.machine()}, {os.cpu_count()} cores (load {os.getloadavg()[0]:.1f}), "
          f"{len(frames)} frames of {Path(args.video).name}, zstd {zstandard.ZSTD_VERSION}\n")
    print("| spec | framing | codes a frame | zstd: ratio | ms a frame | lz4: ratio | ms a frame | none: ms a frame "
          "| zstd: GB an hour at 15 fps | 2 GB lasts |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for name in SPECS:
            spec = PRESETS[name]
            for fit, pad in FITS.items():
                readout = Readout(key, spec, 320, 320, fit=fit, pad=pad)
                measurements = [readout.measure(readout.prepare(f), 0) for f in frames]
                raw = sum(m.nbytes for m in measurements)
                packed, ms_zstd = _record(Path(scratch), measurements, spec, "zstd")
                fast, ms_lz4 = _record(Path(scratch), measurements, spec, "lz4")
                _, ms_none = _record(Path(scratch), measurements, spec, "none")
                hourly = packed / len(frames) * FPS * 3600
                print(f"| {name} | {fit} | {measurements[0].nbytes / 1e3:.0f} kB | {packed / raw:.3f} | "
                      f"{ms_zstd:.2f} | {fast / raw:.3f} | {ms_lz4:.2f} | {ms_none:.2f} | {hourly / 1e9:.1f} | "
                      f"{BUDGET / (hourly / 60):.1f} min |")
                if name == "rgb8" and fit == "crop":
                    alternative = _json_alternative(measurements)
    _chunks(frames, key)
    ratio, ms = alternative
    print(f"\nrgb8, crop, RawImage as JSON (base64 codes) with zstd level 3: ratio {ratio:.3f} of the codes, "
          f"{ms:.2f} ms a frame to serialise and compress")


if __name__ == "__main__":
    main()
