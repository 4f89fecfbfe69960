"""Real servers on 127.0.0.1 for the server and forwarding tests: a repository of keyed models (the
default Fashion-MNIST CNN, whole and split), served in a thread (uvicorn) or as a `keycam serve` process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from export.package.triton import export_triton

ROOT = Path(__file__).resolve().parents[3]
SPLIT_AFTER = "/6/Relu"  # after the residual block: the feature model keeps the layers that reveal the layout


@pytest.fixture(scope="session")
def repository(tmp_path_factory):
    """(folder, key, models): `fmnist` (full keyed), `fmnist_task` (the split's task), and the local files."""
    import hashlib

    from edge.default import ASSET, MEAN, SPEC, STD
    from firmware_sim.keys import MasterKey

    key = MasterKey(hashlib.sha256(b"keycam tests").digest())
    folder = tmp_path_factory.mktemp("serving")
    save(keyify(ASSET, key, KeyifyOptions(spec=SPEC, mean=MEAN, std=STD)), folder / "keyed.onnx")
    save(keyify(ASSET, key, KeyifyOptions(spec=SPEC, mean=MEAN, std=STD, split_after=SPLIT_AFTER)),
         folder / "split.onnx")
    repo = folder / "repo"
    export_triton(folder / "keyed.onnx", repo, "fmnist")
    export_triton(folder / "split.task.onnx", repo, "fmnist_task")
    key.save(folder / "device.key")
    return folder, key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThreadServer:
    """`create_app` under uvicorn in a background thread, on a free port, configured as `keycam serve` is
    (guarded connections, limits). Keyword arguments named like `edge.server.limits.Limits` fields set
    the limits; the others go to `create_app`."""

    def __init__(self, repo: Path, **options) -> None:
        import dataclasses

        import uvicorn

        from edge.server.app import create_app
        from edge.server.limits import Limits
        from edge.server.listen import open_socket, uvicorn_config
        from edge.server.repository import ModelRepository

        fields = {f.name for f in dataclasses.fields(Limits)}
        key = options.pop("key", None)  # opens sealed measurements (keycam serve --key)
        limits = Limits(**{k: v for k, v in options.items() if k in fields})
        self.socket = open_socket("127.0.0.1", 0)
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(ModelRepository(repo, key=key), limits=limits,
                              **{k: v for k, v in options.items() if k not in fields})
        self.server = uvicorn.Server(uvicorn_config(self.app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 60  # hang protection only
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


class ProcessServer:
    """`keycam serve` as its own process, so that a test can kill it and start it again on the same port."""

    def __init__(self, repo: Path, port: int | None = None, *extra: str, nofile: tuple[int, int] | None = None) -> None:
        """``extra``: more `keycam serve` options; ``nofile``: the (soft, hard) RLIMIT_NOFILE it starts with."""
        self.repo, self.port, self.extra, self.nofile = repo, port or free_port(), extra, nofile
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = None  # its stderr: a file, since a pipe nobody reads fills up and stops the server

    def start(self) -> ProcessServer:
        import resource
        import tempfile

        command = [sys.executable, "-m", "edge.cli", "serve", "--model-repository", str(self.repo),
                   "--port", str(self.port), *self.extra]
        nofile = self.nofile
        if self.log is not None:
            self.log.close()
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log,
                                        env={**os.environ, "OMP_NUM_THREADS": "1"},
                                        preexec_fn=None if nofile is None else
                                        lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile))
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, self.stderr()
            try:
                if httpx.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "keycam serve did not become ready"
            time.sleep(0.1)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stderr(self) -> str:
        """What the server wrote to stderr so far."""
        if self.log is None:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.log is not None:
            self.log.close()
            self.log = None

    def __enter__(self) -> ProcessServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture
def served(repository):
    folder, key = repository
    with ThreadServer(folder / "repo") as server:
        yield server


def health(port: int, timeout: float = 60.0) -> float:
    """`GET /v2/health/live` on a fresh connection (a raw socket: the probe costs the client next to nothing);
    fails unless the answer is 200. ``timeout`` only protects against a hang. Returns the seconds it took, for
    reports: never assert on them (a loaded machine answers slower, not wrongly)."""
    begin = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    return time.perf_counter() - begin
