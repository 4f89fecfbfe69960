"""Benchmark: what the [web] page costs the capture loop, at 30 fps and VGA, with nobody, one and three viewers.

The real loop (``edge.loop.CaptureLoop``: capture thread, device thread, task stage, sinks) reads a live source that
delivers a 640 x 480 photo 30 times a second through the real readout stage (the edge transform, rgb8: a VGA
measurement, 921,600 codes a frame). The model stage is a stand-in of fixed work (numpy, a few ms a frame) with one
detection as its answer: what the page costs depends on the frame rate, the measurement's size and what the CPU
has left, not on the model. The page is the real ``[web]`` sink and server; each viewer is a process of its own
reading the MJPEG stream as fast as it can, at niceness 19: it stands for a browser on another machine, whose CPU
would not be the camera's.

One run, cut into slices of ``--slice`` seconds, each in one state: the page off (the loop's sink does not call
it; its threads idle), the page on with nobody watching, and one or three viewers with the stream at each
``--stream-fps``. The states are shuffled in every cycle of ``--cycles``, and each is compared with the page-off
slice of its own cycle, so that a machine whose load changes (a shared one) costs every state alike. Per state,
medians over the cycles: the loop's frame rate and drops; the time the loop's thread spends in the page's
``write`` (all the page ever puts on the loop's thread); the CPU time per frame of the loop's threads (from /proc:
time other programs take is not counted) and its change against page off in the same cycle; the CPU the page's
threads use (encoder, uvicorn's event loop); the parts encoded and the frames each viewer received.

    python benchmarks/bench_web.py [--cycles 8] [--slice 3] [--stream-fps 10,30]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.frame import Frame, Result  # noqa: E402
from edge.lab.demo import shipped_photo  # noqa: E402
from edge.loop import CaptureLoop  # noqa: E402
from edge.sensor import Readout  # noqa: E402
from edge.sinks.base import Sink  # noqa: E402
from edge.sinks.web import WebConfig  # noqa: E402
from edge.sources.base import Source  # noqa: E402
from edge.sources.virtual import VirtualSensor  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from firmware_sim.spec import DEFAULT_SPEC  # noqa: E402

WIDTH, HEIGHT, FPS, SETTLE_S = 640, 480, 30.0, 0.5
LOOP_THREADS = ("keycam-capture", "keycam-device", "bench-loop")  # the loop's: capture, device stage, task stage
PAGE_THREADS = ("keycam-web", "keycam-web-measurement")  # the page's: uvicorn's event loop, the encoder
VIEWER = """
import socket, sys, time
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
sock.settimeout(0.5)
sock.sendall(b"GET /stream.mjpeg HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n")
end, parts, tail = time.monotonic() + float(sys.argv[2]), 0, b""
while time.monotonic() < end:
    try:
        data = sock.recv(1 << 20)
    except TimeoutError:
        continue
    if not data:
        break
    parts += (tail + data).count(b"--keycamframe\\r\\n")
    tail = data[-16:]
print(parts)
"""


class Live(Source):
    """A camera stand-in: one picture, ``FPS`` times a second, until stopped."""

    live = True

    def __init__(self, picture: np.ndarray, stop: threading.Event) -> None:
        super().__init__()
        self.picture, self.stop, self.next = picture, stop, time.monotonic()

    def _open(self) -> None:
        pass

    def _read(self) -> Frame | None:
        self.next = max(self.next + 1.0 / FPS, time.monotonic())  # a late frame comes at once; no burst after
        if self.stop.wait(max(0.0, self.next - time.monotonic())):
            return None
        return self._frame(self.picture, time.time_ns(), "bench", monotonic_ns=time.monotonic_ns())


class StandIn:
    """The model stage: fixed numpy work on the measurement; the answer, one box."""

    def front(self, frame: Frame) -> Result:
        start = time.perf_counter()
        x = frame.image.astype(np.float32)
        for _ in range(2):
            x = np.sqrt(x * 0.5 + 1.0)
        return Result(frame, latency_ms={"transform": frame.readout_ms, "model": (time.perf_counter() - start) * 1e3})

    def back(self, result: Result) -> Result:
        result.outputs = {"detections": [{"box": [200.0, 120.0, 320.0, 260.0], "score": 0.9, "label": 0,
                                          "class": "face"}], "counts": {"face": 1}}
        return result


class Switch(Sink):
    """The loop's sink: hands each result to the page while ``on``, timing ``write``; counts frames and drops."""

    def __init__(self, page: Sink) -> None:
        self.page, self.on = page, False
        self.write_s: list[float] = []
        self.frames = 0

    def write(self, result: Result) -> None:
        self.frames += 1
        if self.on:
            start = time.perf_counter()
            self.page.write(result)
            self.write_s.append(time.perf_counter() - start)

    def start(self) -> None:
        self.page.start()

    def close(self) -> None:
        self.page.close()


def _cpu(names: tuple[str, ...]) -> float:
    """CPU seconds the threads called ``names`` have used (Linux: /proc/self/task/TID/stat, utime + stime)."""
    total = 0.0
    for thread in threading.enumerate():
        if thread.name in names and thread.native_id is not None:
            try:
                fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _slice(loop, switch: Switch, stream, state: tuple[str, float, int], seconds: float) -> dict:
    """One slice in ``state`` (name, stream fps, viewers): what the loop and the page did in it."""
    _, rate, viewers = state
    switch.on = rate > 0
    stream.period = 1.0 / rate if rate else stream.period
    port = str(switch.page.server.port)
    watchers = [subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", VIEWER, port, str(SETTLE_S + seconds)],
                                 stdout=subprocess.PIPE, text=True) for _ in range(viewers)]
    time.sleep(SETTLE_S)
    switch.write_s.clear()
    start = (switch.frames, loop.metrics.drops, _cpu(LOOP_THREADS), _cpu(PAGE_THREADS), stream.encoded,
             time.monotonic())
    time.sleep(seconds)
    elapsed, frames = time.monotonic() - start[5], switch.frames - start[0]
    found = {"fps": frames / elapsed, "drops": loop.metrics.drops - start[1],
             "loop_cpu_ms": (_cpu(LOOP_THREADS) - start[2]) / max(frames, 1) * 1e3,
             "page_cores": (_cpu(PAGE_THREADS) - start[3]) / elapsed, "encoded_fps": (stream.encoded - start[4]) / elapsed,
             "write_us": statistics.median(switch.write_s) * 1e6 if switch.write_s else 0.0,
             "write_p99_us": float(np.percentile(switch.write_s, 99)) * 1e6 if switch.write_s else 0.0}
    switch.on = False
    found["viewer_fps"] = [int(w.communicate(timeout=60)[0]) / (SETTLE_S + seconds) for w in watchers]
    return found


def measure(states: list[tuple[str, float, int]], cycles: int, seconds: float) -> dict[str, list[dict]]:
    picture = cv2.resize(cv2.imread(str(shipped_photo("astronaut")), cv2.IMREAD_COLOR), (WIDTH, HEIGHT))
    key, stop = MasterKey(bytes(range(32))), threading.Event()
    context = SimpleNamespace(key=key, manifest=SimpleNamespace(spec=DEFAULT_SPEC, input=SimpleNamespace(
        channel_order="rgb")), answers=None, tracking=None)
    switch = Switch(WebConfig(enabled=True, port=0, fps=10).build(context))
    readout = Readout(key, DEFAULT_SPEC, HEIGHT, WIDTH, sensor_order="rgb", source_order="bgr")
    loop = CaptureLoop(VirtualSensor(Live(picture, stop), readout), StandIn(), [switch], queue_size=4)
    thread = threading.Thread(target=loop.run, name="bench-loop", daemon=True)
    thread.start()
    while switch.page.server is None:
        time.sleep(0.01)
    stream = switch.page.server.streams["measurement"]
    results: dict[str, list[dict]] = {name: [] for name, _, _ in states}
    shuffle = random.Random(0).shuffle
    for cycle in range(cycles):
        order = list(states)
        shuffle(order)
        for state in order:
            results[state[0]].append(_slice(loop, switch, stream, state, seconds))
        print(f"  cycle {cycle + 1} of {cycles}: loop fps " + ", ".join(
            f"{name} {runs[-1]['fps']:.1f}" for name, runs in results.items()), file=sys.stderr)
    stop.set()
    thread.join(timeout=30)
    return results


def _row(name: str, runs: list[dict], off: list[dict]) -> str:
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "viewer_fps"}
    changes = [r["loop_cpu_ms"] / o["loop_cpu_ms"] - 1 for r, o in zip(runs, off)]
    low, change, high = statistics.quantiles(changes, n=4) if len(changes) > 1 else (changes[0],) * 3
    viewers = [statistics.median(r["viewer_fps"][i] for r in runs) for i in range(len(runs[0]["viewer_fps"]))]
    write = (f"{med['write_us']:.1f} / {med['write_p99_us']:.0f} ({med['write_us'] / 1e6 * FPS:.2%})"
             if med["write_us"] else "-")
    return (f"| {name} | {med['fps']:.1f} | {med['drops']:.0f} | {write} | {med['loop_cpu_ms']:.2f} | {change:+.1%} "
            f"({low:+.0%} to {high:+.0%}) | "
            f"{med['page_cores']:.3f} | {med['encoded_fps']:.1f} | {', '.join(f'{v:.1f}' for v in viewers) or '-'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=8)
    parser.add_argument("--slice", type=float, default=3.0, help="seconds measured per state and cycle")
    parser.add_argument("--stream-fps", default="10,30", help="the page's [web] fps values to measure")
    args = parser.parse_args()
    states = [("page off", 0.0, 0), ("page on, nobody watching", 10.0, 0)]
    for rate in (float(v) for v in args.stream_fps.split(",")):
        states += [(f"1 viewer, stream {rate:g} fps", rate, 1), (f"3 viewers, stream {rate:g} fps", rate, 3)]
    load = os.getloadavg()
    results = measure(states, args.cycles, args.slice)
    print(f"{date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.1f} -> "
          f"{os.getloadavg()[0]:.1f}; {WIDTH}x{HEIGHT} rgb8 at {FPS:g} fps; {args.cycles} cycles of "
          f"{args.slice:g} s slices, medians\n")
    print("| state | loop fps | drops | the page's `write` on the loop's thread: median / p99, µs (share of the "
          "frame period) | loop threads' CPU per frame, ms | against page off in the same cycle: median (quartiles) "
          "| page threads' CPU, cores | parts encoded per s | each viewer, frames per s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        print(_row(name, runs, results["page off"]))


if __name__ == "__main__":
    main()
