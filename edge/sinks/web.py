"""``[web]``: the page the device serves (``edge.web``): the measurement live with its answers drawn over it,
the events, the run's health and its recordings.

The sink is all the capture loop ever meets of the page, and it never waits for it: ``write`` hands the
result to a :class:`Feed` (the latest result replaces the one before, under a lock held for a few
assignments; a short record of the answer goes to a bounded ring) and returns. The page's own threads
read the latest result when they are ready for one: a JPEG encoder thread per stream (only while someone
watches), and uvicorn's event loop for the viewers, each of whom gets the newest encoded frame and skips
what it was too slow for. Nothing the page does (a stalled viewer, a slow encoder, a stopped browser) can
hold a frame up.

The page is off by default and listens on 127.0.0.1. Bound to any other address it needs a token
(``token_file``, mode 0600, or ``credential:NAME``); ``plain_view`` (the measurement restored with the key: the
scene) needs the token wherever it listens, puts a banner on the page and a warning in the log. Starlette and
uvicorn come from the ``server`` extra, and ``edge.web`` is imported only when the page starts.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import sys
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from edge.credentials import credential_path, read_token
from edge.errors import ConfigError
from edge.frame import Result
from edge.sinks.base import Sink, SinkConfig, SinkContext

if TYPE_CHECKING:
    from edge.web import WebServer

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Feed:
    """What the loop hands the page: the latest result (replaced, never queued), and short records of recent answers.

    ``put`` is the loop's side and only assigns and appends under one lock; the page's threads read
    ``latest()``, ``wait(version)`` and ``snapshot()``. A record is ``(arrived monotonic ns, sequence,
    timestamp_ns, epoch, outputs, events, latency_ms, zones)``: references to what the result holds already,
    never the measurement, so the ring costs no copy and keeps no picture alive."""

    def __init__(self, keep: int = 500, window: int = 256, tracking: bool = False) -> None:
        self._cond = threading.Condition()
        self._latest: Result | None = None
        self.version = 0  # results received
        self.lost = 0  # frames missing from the sequence (dropped by the loop, or failed in a stage)
        self.recent: deque = deque(maxlen=window)  # every result's record, for rates and stage times
        self.answers: deque = deque(maxlen=keep)  # records of the results with events (or detections, untracked)
        self._last_sequence = -1
        self.tracking = tracking  # keep the results with events (tracking on), else those with detections

    def put(self, result: Result) -> None:
        frame = result.frame
        outputs = result.outputs if isinstance(result.outputs, dict) else {}
        events = getattr(result, "events", None)
        record = (time.monotonic_ns(), frame.sequence, frame.timestamp_ns, frame.epoch, outputs, events,
                  result.latency_ms, getattr(result, "zones", None))
        with self._cond:
            if self._last_sequence >= 0 and frame.sequence > self._last_sequence + 1:
                self.lost += frame.sequence - self._last_sequence - 1
            self._last_sequence = max(self._last_sequence, frame.sequence)
            self._latest = result
            self.version += 1
            self.recent.append(record)
            if events if self.tracking else outputs.get("detections"):
                self.answers.append(record)
            self._cond.notify_all()

    def latest(self) -> tuple[int, Result | None]:
        with self._cond:
            return self.version, self._latest

    def wait(self, seen: int, timeout: float) -> tuple[int, Result | None]:
        """The latest result once it is newer than version ``seen`` (or, after ``timeout`` seconds, whatever is there)."""
        with self._cond:
            self._cond.wait_for(lambda: self.version != seen, timeout)
            return self.version, self._latest

    def wake(self) -> None:
        """Wake every thread waiting for a result (the page is closing)."""
        with self._cond:
            self._cond.notify_all()

    def snapshot(self) -> tuple[list, list, int, int]:
        """(recent records, answer records, results received, frames lost), copied under the lock."""
        with self._cond:
            return list(self.recent), list(self.answers), self.version, self.lost


class WebSink(Sink):
    """The page's sink: ``write`` feeds :class:`Feed`; ``start`` serves the page (``edge.web``), ``close`` stops it."""

    def __init__(self, settings: WebConfig, context: SinkContext, token: str | None) -> None:
        self.settings, self.context, self.token = settings, context, token
        self.feed = Feed(keep=settings.events, tracking=context.tracking is not None)
        self.server: WebServer | None = None
        self.run = None  # the job this page belongs to (``attach``): its source, sinks, masks and recordings
        self.registry = None  # the run's Prometheus registry, when [metrics] is on (``watch``)
        self._served = ""  # the page's summary line, once it has stopped

    def attach(self, run) -> None:
        """Show what only the run knows (its ``edge.job.Job``): the source's health, the other sinks' summaries, the
        privacy masks (``run.readout.masks``) and the recordings of ``[record] path``."""
        self.run = run

    def watch(self, metrics) -> None:
        self.registry = metrics.registry

    def start(self) -> None:
        if self.server is not None:
            return
        from edge.web import WebServer  # Starlette and uvicorn: only when the page is on

        server = WebServer(self)
        server.start()  # a ConfigError in one line when it cannot listen: nothing is served then
        self.server = server
        print(f"keycam: web page on {self.server.url}{'' if self.token else ' (no token: this machine only)'}",
              file=sys.stderr)
        if self.settings.plain_view:
            log.warning("keycam: WARNING: [web] plain_view is on: the page at %s shows the restored PLAIN picture "
                        "(the scene) to anyone holding the token", self.server.url)

    def write(self, result: Result) -> None:
        self.feed.put(result)

    def close(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()
            self._served = server.summary()

    def summary(self) -> str | None:
        return self._served or None


class WebConfig(SinkConfig):
    """``[web]``: the page the device serves (``edge.web``); off by default, on 127.0.0.1 unless told otherwise."""

    enabled: bool = Field(default=False, description="serve the page while the run runs")
    host: str = Field(default="127.0.0.1", min_length=1, description="the address to listen on (127.0.0.1: this "
                                                                     "machine only; any other needs token_file)")
    port: int = Field(default=8080, ge=0, le=65535, description="the TCP port (0: a free one, said in the log)")
    token_file: str = Field(default="", description="the page's token, in a file of mode 0600 or credential:NAME "
                                                    "(empty: no token; allowed on a loopback address only)")
    plain_view: bool = Field(default=False, description="KEY HOLDERS ONLY: also offer the measurement restored with "
                                                        "the key, the scene itself (needs token_file; a banner on "
                                                        "the page and a warning in the log)")
    fps: float = Field(default=10.0, ge=0.5, le=60, description="the stream's frame rate, at most; viewers skip the "
                                                                "frames in between, the loop never does "
                                                                "(unit: frames per second)")
    quality: int = Field(default=75, ge=20, le=95, description="JPEG quality of the streamed pictures (20-95)")
    viewers: int = Field(default=4, ge=1, le=64, description="streams served at once (more are refused with 503)")
    events: int = Field(default=500, ge=10, le=100_000, description="frames with events or detections the page "
                                                                    "keeps for its list (unit: frames)")

    @model_validator(mode="after")
    def _guarded(self) -> WebConfig:
        if self.plain_view and not self.enabled:
            raise ValueError("web.plain_view is set but web.enabled is false; the plain view is part of the page")
        if self.plain_view and not self.token_file:
            raise ValueError("web.plain_view shows the scene: it needs web.token_file (a file of mode 0600 holding "
                             "the token), wherever the page listens")
        if self.enabled and not self.token_file and not is_loopback(self.host):
            raise ValueError(f"web.host = {self.host!r} is reachable from other machines: set web.token_file (a "
                             f"file of mode 0600 holding the token), or listen on 127.0.0.1")
        return self

    def build(self, context: SinkContext) -> Sink | None:
        if not self.enabled:
            return None
        missing = [name for name in ("starlette", "uvicorn") if importlib.util.find_spec(name) is None]
        if missing:
            raise ConfigError(f"[web] needs {' and '.join(missing)}: pip install 'keycam[server]'")
        token = read_token(credential_path(self.token_file)) if self.token_file else None
        return WebSink(self, context, token)
