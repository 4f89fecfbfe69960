"""Health and metrics over HTTP in the Prometheus text format (``prometheus_client``).

``MetricsServer(host, port)`` serves ``/metrics`` (any path works) on its own registry while the loop
runs (docs/runtime.md lists every metric):

- the loop's counters (frames handed to the sinks, drops, errors, skipped frames, camera failures: ``rate()`` them),
  per-stage time (a summary, seconds), ``keycam_fps`` (frames per second over the last ``window_s`` seconds, from the
  frames' completion times, :class:`FrameRate`) and ``keycam_up``;
- ``keycam_build_info``: keycam's, Python's and onnxruntime's versions and, once the run is known
  (:meth:`MetricsServer.describe`), the readout spec's version, the key's fingerprint (never the key) and the layout
  policy;
- the process (``process_*``: CPU, memory, open files), Python (``python_info``) and its garbage collector
  (``python_gc_*``), as every Prometheus client exports them.

Port 0 picks a free port. Binds to 127.0.0.1 by default: expose it on the network deliberately.
:meth:`MetricsServer.watch_forwarding` adds the forwarding sink's counters (answered, refused, failed attempts,
spooled, dropped, quarantined, misconfigured, lost, waited) and the frames waiting for the server, read from the sink whenever Prometheus scrapes;
:meth:`MetricsServer.watch_source` the source's health (a camera's dropped frames and timeouts, its sensor
temperature); :meth:`MetricsServer.watch_answers` what the answers say (``edge.sinks.metrics``: detections by label,
the tracker's events, objects in view and in each zone).
"""

from __future__ import annotations

import platform
import threading
import time
from collections import deque
from importlib import metadata

from prometheus_client import (CollectorRegistry, Counter, GCCollector, Gauge, Info, PlatformCollector,
                               ProcessCollector, Summary, start_http_server)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge.errors import ConfigError

WINDOW_S = 10.0  # keycam_fps is over the frames of the last seconds
KEPT = 4096  # completion times kept at most (a faster run is measured over its last KEPT frames)


class FrameRate:
    """Frames per second over the last ``window_s`` seconds, from the frames' completion times (a deque of at most
    ``kept``): the frames completed in the window divided by the window; while the run is younger than the window,
    the frames after the first divided by the time since the first; when the deque is full before the window is, its
    frames over their time. A run that stops answering falls to 0 within the window. ``clock``: seconds, monotonic."""

    def __init__(self, window_s: float = WINDOW_S, kept: int = KEPT, clock=time.monotonic) -> None:
        self.window_s, self.clock = window_s, clock
        self._times: deque[float] = deque(maxlen=max(2, kept))
        self._first: float | None = None
        self._lock = threading.Lock()

    def tick(self) -> None:
        """One frame completed now."""
        with self._lock:
            self._times.append(self.clock())
            self._first = self._times[0] if self._first is None else self._first

    def __call__(self) -> float:
        now = self.clock()
        with self._lock:
            since = now - self.window_s
            while self._times and self._times[0] < since:
                self._times.popleft()
            count, full = len(self._times), len(self._times) == self._times.maxlen
            oldest, first = (self._times[0] if self._times else now), self._first
        if full:  # more frames in the window than kept: those kept, over their time
            span = now - oldest
        elif first is not None and first >= since:  # younger than the window: the intervals since the first frame
            count, span = count - 1, now - first
        else:
            span = self.window_s
        return count / span if span > 0 and count > 0 else 0.0


def build_labels() -> dict[str, str]:
    """keycam's, Python's and onnxruntime's versions (``keycam_build_info``'s labels before the run is known)."""
    try:
        version = metadata.version("keycam")
    except metadata.PackageNotFoundError:
        version = "unknown"
    try:
        import onnxruntime  # the device's runtime: loaded by the run already

        runtime = onnxruntime.__version__
    except ImportError:
        runtime = "none"
    return {"version": version, "python": platform.python_version(), "onnxruntime": runtime}


class MetricsServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, window_s: float = WINDOW_S) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        for collector in (ProcessCollector, PlatformCollector, GCCollector):  # process_*, python_info, python_gc_*
            collector(registry=r)
        self.frames = Counter("keycam_frames", "frames answered (or recorded) and handed to the sinks; rate() it",
                              registry=r)
        self.drops = Counter("keycam_drops", "live frames dropped to keep latency low", registry=r)
        self.errors = Counter("keycam_errors", "frames the pipeline rejected", registry=r)
        self.skipped = Counter("keycam_skipped", "frames the source could not decode", registry=r)
        self.camera_failures = Counter("keycam_camera_failures", "camera failures (each retried)", registry=r)
        self.stage = Summary("keycam_stage_seconds", "time per frame and stage", ["stage"], registry=r)
        self.rate = FrameRate(window_s)
        self.fps = Gauge("keycam_fps", f"frames per second over the last {window_s:g} s", registry=r)
        self.fps.set_function(self.rate)  # read at each scrape: the loop only ticks
        self.build = Info("keycam_build", "keycam's build and the run's readout: versions, readout spec, key "
                                          "fingerprint, layout policy", registry=r)
        self.build.info(build_labels())
        self.up = Gauge("keycam_up", "1 while the loop runs", registry=r)
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=r)
        except OSError as error:
            raise ConfigError(f"metrics port {port} on {host} cannot be used ({error.strerror}); choose another "
                              f"[metrics] port, or 0 for none") from None
        self.port = self._server.server_port
        self.up.set(1)

    def describe(self, manifest, fingerprint: str) -> None:
        """Add the run's readout to ``keycam_build_info``: ``manifest`` (the one the sensor reads out for) gives the
        readout spec's version and the layout policy; ``fingerprint`` is the key's public fingerprint."""
        self.build.info({**build_labels(), "readout_spec": str(manifest.spec.spec_version),
                         "fingerprint": fingerprint, "policy": manifest.policy})

    def watch_answers(self, counts) -> None:
        """Export ``counts`` (an ``edge.sinks.metrics.AnswerCounts``): read at every scrape."""

        class _Collector:
            def collect(self):
                return answer_families(counts.snapshot())

        self.registry.register(_Collector())

    def watch_forwarding(self, sink) -> None:
        """Export ``sink`` (an ``edge.sinks.forward.ForwardSink``): its stats are read at every scrape."""

        class _Collector:
            def collect(self):
                stats = sink.stats
                for name, text in (("answered", "forwarded frames the server answered"),
                                   ("rejected", "forwarded frames the server refused (4xx)"),
                                   ("failures", "requests that met an unavailable server (each retried)"),
                                   ("spooled", "frames written to the disk spool"),
                                   ("dropped", "spooled frames dropped because the spool was full"),
                                   ("quarantined", "damaged spool entries moved aside, never sent"),
                                   ("misconfigured", "checks that found the server keyed for another key"),
                                   ("lost", "frames neither sent nor spooled (the spool's disk full or failing)"),
                                   ("waited", "frames that waited for room in a full spool (when_full = "
                                              "stop_capture)")):
                    yield CounterMetricFamily(f"keycam_forward_{name}", text, value=getattr(stats, name))
                yield GaugeMetricFamily("keycam_forward_alarm", "1 while the server is misconfigured (frames kept)",
                                        value=1.0 if sink.alarm else 0.0)
                yield GaugeMetricFamily("keycam_forward_pending", "frames waiting for the server", value=sink.pending)

        self.registry.register(_Collector())

    def watch_source(self, source) -> None:
        """Export ``source.health()`` (e.g. the camera's dropped frames and sensor temperature) at every scrape:
        ``keycam_source_<name>``, a counter for names ending in ``_frames`` or ``_timeouts``, a gauge otherwise."""

        class _Collector:
            def collect(self):
                for name, value in source.health().items():
                    family = CounterMetricFamily if name.endswith(("_frames", "_timeouts")) else GaugeMetricFamily
                    yield family(f"keycam_source_{name}", f"the source's {name.replace('_', ' ')}", value=value)

        self.registry.register(_Collector())

    def close(self) -> None:
        self.up.set(0)
        self._server.shutdown()
        self._server.server_close()


def answer_families(snapshot: dict):
    """The families of :meth:`MetricsServer.watch_answers` from ``AnswerCounts.snapshot()``: detections by label
    always; with tracking, events by type and objects in view by label; with zones, entries and objects per zone."""
    detections = CounterMetricFamily("keycam_detections", "detections in the answers, by label (the model's class "
                                                          "names)", labels=["label"])
    for label, count in sorted(snapshot["detections"].items()):
        detections.add_metric([label], count)
    yield detections
    if not snapshot["tracking"]:
        return
    events = CounterMetricFamily("keycam_events", "the tracker's events (new, update, end), by type", labels=["type"])
    for kind, count in sorted(snapshot["events"].items()):
        events.add_metric([kind], count)
    yield events
    objects = GaugeMetricFamily("keycam_objects", "tracked objects in view, by label", labels=["label"])
    for label, count in sorted(snapshot["objects"].items()):
        objects.add_metric([label], count)
    yield objects
    if not snapshot["zones"]:
        return
    entries = CounterMetricFamily("keycam_zone_entries", "tracked objects that entered a zone, by zone and label",
                                  labels=["zone", "label"])
    inside = GaugeMetricFamily("keycam_zone_objects", "tracked objects in a zone now, by zone and label",
                               labels=["zone", "label"])
    for family, counts in ((entries, snapshot["entries"]), (inside, snapshot["zone_objects"])):
        for (zone, label), count in sorted(counts.items()):
            family.add_metric([zone, label], count)
        yield family
