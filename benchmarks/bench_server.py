"""Benchmark: `keycam serve` under N simulated devices on 127.0.0.1, each sending at a fixed rate.

The server runs as its own process (`keycam serve`, onnxruntime on both cores, one run of a model at
a time). The devices are asyncio tasks in this process, each with its own HTTP connection, sending
one binary-tensor inference request (batch of one measurement, a fresh request id) every 1/rate
seconds on an open-loop schedule: a slow answer does not slow the next request down. Reported per
(model, devices): offered and achieved throughput (answers per second), p50/p99 latency from
sending to the whole answer, failed requests, the server's resident memory after the run (VmRSS)
and at its peak (VmHWM), and the model's own median run time in this process (batch of one,
the same onnxruntime settings), so that latency / model time is the cost of the protocol and
the server. The server's CPU time per answered request (all its threads) and the simulated
devices' (this process, which shares the machine's cores with the server) show where the time goes.

    python benchmarks/bench_server.py [--devices 1,4,16] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.default import ASSET, MEAN, SPEC, STD  # noqa: E402
from edge.wire.codec import HEADER_LENGTH, decode_response, encode_request  # noqa: E402
from edge.runtime import KeyedModel  # noqa: E402
from export.keyify import KeyifyOptions, keyify  # noqa: E402
from export.package.save import save  # noqa: E402
from export.package.triton import export_triton  # noqa: E402
from export.zoo import CIFAR_MEAN, CIFAR_STD, resnet20  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402

# (name, plain model, keyify options, frame shape, frames per second per device)
MODELS = [
    ("fmnist", ASSET, KeyifyOptions(spec=SPEC, mean=MEAN, std=STD), (28, 28, 1), 30.0),
    ("resnet20", None, KeyifyOptions(mean=CIFAR_MEAN, std=CIFAR_STD, policy="boundary"), (32, 32, 3), 10.0),
]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _memory_mib(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def _device(url: str, model: str, frame: np.ndarray, rate: float, seconds: float, index: int,
                  latencies: list[float], failures: list[str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        start = time.perf_counter() + 0.01 * index  # stagger the devices a little
        count = int(seconds * rate)
        pending = []
        for n in range(count):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            body, length = encode_request({"measurement": frame[np.newaxis]}, request_id=f"dev{index}:{n}")
            pending.append(asyncio.create_task(_send(client, model, body, length, latencies, failures)))
        await asyncio.gather(*pending)


async def _send(client, model, body, length, latencies, failures) -> None:
    sent = time.perf_counter()
    try:
        answer = await client.post(f"/v2/models/{model}/infer", content=body, headers={HEADER_LENGTH: str(length)})
        if answer.status_code != 200:
            failures.append(f"HTTP {answer.status_code}")
            return
        decode_response(answer.content, answer.headers.get(HEADER_LENGTH))
    except httpx.HTTPError as error:
        failures.append(type(error).__name__)
        return
    latencies.append(time.perf_counter() - sent)


def _serve(repo: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "edge.cli", "serve", "--model-repository", str(repo),
                                "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"keycam serve did not start: {process.stderr.read().decode()}")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    counts = [int(n) for n in args.devices.split(",")]
    key = MasterKey.generate()
    print(f"# keycam serve under load, {date.today()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"{args.seconds:.0f} s per row")
    print("| model | devices | offered (req/s) | achieved (req/s) | p50 (ms) | p99 (ms) | failed | model run (ms) "
          "| server CPU per request (ms) | devices' CPU per request (ms) | server RSS / peak (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as temp:
        repo = Path(temp) / "repo"
        frames = {}
        for name, plain, options, shape, _rate in MODELS:
            path = Path(temp) / f"{name}.onnx"
            save(keyify(plain if plain is not None else resnet20(), key, options), path)
            export_triton(path, repo, name)
            frames[name] = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        server = _serve(repo, args.port)
        try:
            for name, _, _, _shape, rate in MODELS:
                local = KeyedModel(Path(temp) / f"{name}.onnx", key)
                local.run(frames[name])
                times = []
                for _ in range(200):
                    begin = time.perf_counter()
                    local.run(frames[name])
                    times.append(time.perf_counter() - begin)
                model_ms = statistics.median(times) * 1e3
                for devices in counts:
                    latencies: list[float] = []
                    failures: list[str] = []

                    async def load(devices=devices, latencies=latencies, failures=failures, name=name, rate=rate):
                        await asyncio.gather(*(_device(f"http://127.0.0.1:{args.port}", name, frames[name], rate,
                                                       args.seconds, i, latencies, failures)
                                               for i in range(devices)))

                    begin, cpu, mine = time.perf_counter(), _cpu_seconds(server.pid), time.process_time()
                    asyncio.run(load())
                    elapsed = time.perf_counter() - begin
                    server_ms = (_cpu_seconds(server.pid) - cpu) * 1e3 / max(1, len(latencies))
                    client_ms = (time.process_time() - mine) * 1e3 / max(1, len(latencies))
                    rss, peak = _memory_mib(server.pid)
                    ordered = sorted(latencies)
                    p50 = ordered[len(ordered) // 2] * 1e3 if ordered else float("nan")
                    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3 if ordered else float("nan")
                    print(f"| {name} | {devices} | {devices * rate:.0f} | {len(latencies) / elapsed:.0f} | {p50:.1f} "
                          f"| {p99:.1f} | {len(failures)} | {model_ms:.2f} | {server_ms:.2f} | {client_ms:.2f} "
                          f"| {rss:.0f} / {peak:.0f} |", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
