"""A running page for the tests: the embedded default's face detector on scikit-image's astronaut, read out by the
virtual sensor from a live source that repeats the photo, through the real capture loop, with ``[web]`` on."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import httpx
import numpy as np

from edge.config import Config
from edge.frame import Frame
from edge.job import build_job
from edge.lab.demo import shipped_photo
from edge.sinks.web import WebSink
from edge.sources.base import Source
from edge.sources.virtual import VirtualSensor

TOKEN = "page-token-for-the-tests-0123456789"


class Repeat(Source):
    """A live source: one picture again and again, ``fps`` times a second, until ``stop`` is set (then it ends)."""

    live = True
    channel_order = "bgr"

    def __init__(self, picture: np.ndarray, fps: float, stop: threading.Event, origin: str = "astronaut.png") -> None:
        super().__init__()
        self.picture, self.period, self.stop, self.origin = picture, 1.0 / fps, stop, origin

    def _open(self) -> None:
        pass

    def _read(self) -> Frame | None:
        if self.stop.wait(self.period):
            return None
        return self._frame(self.picture, time.time_ns(), self.origin, monotonic_ns=time.monotonic_ns())


def astronaut_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "astronaut.png"), cv2.imread(str(shipped_photo("astronaut")), cv2.IMREAD_COLOR))
    return folder


def token_file(folder: Path, token: str = TOKEN) -> Path:
    path = folder / "web.token"
    path.write_text(token + "\n")
    os.chmod(path, 0o600)
    return path


def configuration(folder: Path, web: dict | None = None, **sections) -> Config:
    """The face detector over a folder holding the astronaut, ``[web]`` on a free port, results to a file."""
    photos = astronaut_folder(folder / "photos")
    return Config.model_validate({"source": {"kind": "folder", "path": str(photos)},
                                  "results": {"path": str(folder / "results.jsonl")},
                                  "web": {"enabled": True, "port": 0, **(web or {})}, **sections})


def page_of(job) -> WebSink:
    return next(sink for sink in job.sinks if isinstance(sink, WebSink))


@contextmanager
def running_page(folder: Path, web: dict | None = None, fps: float = 10.0, **sections):
    """(job, page sink) while the run runs: ``[web]`` on a free port, the astronaut repeated at ``fps``; the other
    ``sections`` of the configuration as given. The run stops, and the page with it, on leaving."""
    job = build_job(configuration(folder, web, **sections))
    stop = threading.Event()
    picture = cv2.imread(str(folder / "photos" / "astronaut.png"), cv2.IMREAD_COLOR)
    job.plain_source = Repeat(picture, fps, stop)
    job.source = VirtualSensor(job.plain_source, job.readout)
    page = page_of(job)
    assert page.run is job  # build_job attaches every sink to its run (Sink.attach)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            job.run()
        except BaseException as error:  # noqa: BLE001 - shown by the test that waits for the page
            failed.append(error)

    thread = threading.Thread(target=run, name="test-run", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # hang protection only
    while page.server is None or page.feed.version == 0:
        assert not failed, failed
        assert thread.is_alive() and time.monotonic() < deadline, "the run never served its page"
        time.sleep(0.02)
    try:
        yield job, page
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the run did not stop"
        assert not failed, failed


def parts(url: str, count: int = 1, **request) -> list[tuple[dict, bytes]]:
    """The first ``count`` parts of an MJPEG stream: (headers, JPEG bytes) each."""
    found, buffer = [], b""
    with httpx.stream("GET", url, timeout=30, **request) as answer:
        assert answer.status_code == 200, (answer.status_code, answer.read())
        assert answer.headers["content-type"].startswith("multipart/x-mixed-replace; boundary=")
        for chunk in answer.iter_bytes():
            buffer += chunk
            while (head := buffer.find(b"\r\n\r\n")) >= 0:
                lines = buffer[:head].decode("ascii").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                assert lines[0] == "--keycamframe", lines[0]
                length = int(headers["content-length"])
                if len(buffer) < head + 4 + length + 2:
                    break
                found.append((headers, buffer[head + 4:head + 4 + length]))
                buffer = buffer[head + 4 + length + 2:]
                if len(found) == count:
                    return found
    return found
