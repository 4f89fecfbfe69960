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

With ``--abuse`` it measures instead what the server's limits hold under abuse, with its default
options (docs/server.md): its peak resident memory over idle (VmHWM after resetting it) under
requests of 10,000 rows, 24 concurrent 60 MiB bodies, JSON that costs 25x its size to parse and
1 GiB gzip bombs; health latency while 1,100 idle connections flood it (its cap is 1,000); and
when trickling heads and bodies are closed (the 10 s and 30 s timeouts). About 50 s.

    python benchmarks/bench_server.py --abuse
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
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
                                "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # refusals are logged: a pipe nobody reads would fill
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("keycam serve did not start (run it by hand to see why)")
        time.sleep(0.1)


# -- abuse ---------------------------------------------------------------------------------------------


def _health_ms(port: int) -> float:
    begin = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    if not answer.startswith(b"HTTP/1.1 200 "):
        raise SystemExit(f"health failed: {answer[:100]!r}")
    return (time.perf_counter() - begin) * 1e3


def _readable(sock: socket.socket) -> bool:
    poller = select.poll()  # select() cannot watch descriptors past 1023
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _bomb(mib: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    return b"".join([packer.compress(zeros) for _ in range(mib)] + [packer.flush()])


def _binary(rows: int) -> tuple[bytes, dict]:
    body, length = encode_request({"measurement": np.zeros((rows, 28, 28, 1), np.uint8)})
    return body, {HEADER_LENGTH: str(length)}


PROBE = """
import json, select, socket, sys, time
port, latencies = int(sys.argv[1]), []
while not select.select([sys.stdin], [], [], 0.05)[0]:  # until the benchmark closes our stdin
    begin = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\\r\\nHost: probe\\r\\nConnection: close\\r\\n\\r\\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    latencies.append((time.perf_counter() - begin) * 1e3 if answer.startswith(b"HTTP/1.1 200 ") else 1e9)
print(json.dumps(latencies))
"""


def _probing(port: int, run) -> tuple[object, list[float]]:
    """``run()``'s result and the health latencies (ms; 1e9: not 200) measured every 50 ms while it ran, by a
    process of their own (a probe in this process would measure this process's threads too)."""
    probe = subprocess.Popen([sys.executable, "-c", PROBE, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    time.sleep(0.3)
    try:
        result = run()
    finally:
        latencies = json.loads(probe.communicate(b"stop")[0])
    return result, latencies


def _row(what: str, result: str, latencies: list[float], extra: str = "") -> None:
    ordered = sorted(latencies)
    print(f"| {what} | {result} | {ordered[len(ordered) // 2]:.0f} / {ordered[-1]:.0f} ({len(ordered)}) | {extra} |",
          flush=True)


def abuse(port: int) -> int:
    key = MasterKey.generate()
    url = f"http://127.0.0.1:{port}"
    infer = url + "/v2/models/fmnist/infer"
    print(f"# keycam serve under abuse, default options, {date.today()}, {platform.machine()}, "
          f"{os.cpu_count()} cores")
    print("| abuse | answers | health p50 / max, ms (probes) | server memory (MiB) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as temp:
        name, plain, options, _, _ = MODELS[0]
        save(keyify(plain, key, options), Path(temp) / "fmnist.onnx")
        export_triton(Path(temp) / "fmnist.onnx", Path(temp) / "repo", name)
        server = _serve(Path(temp) / "repo", port)
        try:
            body, headers = _binary(1)
            httpx.post(infer, content=body, headers=headers)
            idle, _ = _memory_mib(server.pid)
            objects = json.dumps({"inputs": [{"name": "measurement", "shape": [1, 28, 28, 1], "datatype": "UINT8",
                                              "data": [0] * 784}], "parameters": {"x": [[]] * 1_000_000}}).encode()
            mixes = [("10,000-row requests (7.5 MiB), 8 at once", [_binary(10_000)] * 8),
                     ("60 MiB bodies, 24 at once", [_binary(80_000)] * 24),
                     ("64-row requests, 32 at once", [_binary(64)] * 32),
                     ("JSON of 4 MB `[[],[],...]` (100 MiB to parse), 16 at once", [(objects, {})] * 16),
                     ("1 GiB gzip bombs (1 MiB each), 16 at once", [(_bomb(1024), {"Content-Encoding": "gzip"})] * 16)]
            for what, attacks in mixes:
                Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
                before, _ = _memory_mib(server.pid)

                def attack(item):
                    try:
                        return httpx.post(infer, content=item[0], headers=item[1], timeout=120).status_code
                    except httpx.HTTPError as error:
                        return type(error).__name__

                def run(attacks=attacks):
                    with ThreadPoolExecutor(16) as pool:
                        return list(pool.map(attack, attacks))

                statuses, latencies = _probing(port, run)
                _, peak = _memory_mib(server.pid)
                counts = ", ".join(f"{n} x {s}" for s, n in sorted(Counter(statuses).items(), key=str))
                _row(what, counts, latencies, f"idle {idle:.0f}, before {before:.0f}, peak {peak:.0f} "
                                               f"(+{peak - idle:.0f} over idle)")

            def flood():
                sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(1100)]
                time.sleep(1)
                return sockets

            sockets, latencies = _probing(port, flood)
            open_now = sum(1 for sock in sockets if not _readable(sock))
            fds = len(list(Path(f"/proc/{server.pid}/fd").iterdir()))
            _row("1,100 idle connections (cap 1,000)", f"{open_now} still open, {1100 - open_now} closed",
                 latencies, f"{fds} descriptors open")
            for sock in sockets:
                sock.close()
            heads = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
            bodies = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
            for sock in heads:
                sock.sendall(b"POST /v2/models/fmnist/infer HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
            for sock in bodies:
                sock.sendall(b"POST /v2/models/fmnist/infer HTTP/1.1\r\nHost: bench\r\nContent-Length: 99999\r\n\r\n")
            begin, closed = time.monotonic(), {}

            def trickle():
                while len(closed) < 100 and time.monotonic() - begin < 60:
                    for sock in heads + bodies:
                        if sock in closed:
                            continue
                        try:
                            while _readable(sock):  # a 408, then the end
                                if not sock.recv(65536):
                                    raise ConnectionResetError
                            sock.send(b"x")
                        except OSError:
                            closed[sock] = time.monotonic() - begin
                    time.sleep(0.5)
                return closed

            _, latencies = _probing(port, trickle)
            head_s = sorted(v for k, v in closed.items() if k in heads)
            body_s = sorted(v for k, v in closed.items() if k in bodies)
            _row("50 heads and 50 bodies, a byte each 0.5 s", f"heads closed after {head_s[0]:.1f}-{head_s[-1]:.1f} s, "
                 f"bodies after {body_s[0]:.1f}-{body_s[-1]:.1f} s", latencies)
        finally:
            server.terminate()
            server.wait(timeout=20)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--abuse", action="store_true", help="measure the limits under abuse instead")
    args = parser.parse_args()
    if args.abuse:
        return abuse(args.port)
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
