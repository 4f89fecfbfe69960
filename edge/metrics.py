"""Health and metrics over HTTP in the Prometheus text format (``prometheus_client``).

``MetricsServer(host, port)`` serves ``/metrics`` (any path works) on its own registry while the loop
runs: frames, drops, errors, skipped frames and camera failures (counters), per-stage time
(a summary, seconds), frames per second and ``keycam_up`` (gauges). Port 0 picks a free port.
Binds to 127.0.0.1 by default: expose it on the network deliberately. :meth:`MetricsServer.watch_forwarding`
adds the forwarding sink's counters (answered, refused, failed attempts, spooled, dropped) and the
frames waiting for the server, read from the sink whenever Prometheus scrapes; :meth:`MetricsServer.watch_source`
the source's health (a camera's dropped frames and timeouts, its sensor temperature).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Summary, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge.errors import ConfigError


class MetricsServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("keycam_frames", "frames processed", registry=r)
        self.drops = Counter("keycam_drops", "live frames dropped to keep latency low", registry=r)
        self.errors = Counter("keycam_errors", "frames the pipeline rejected", registry=r)
        self.skipped = Counter("keycam_skipped", "frames the source could not decode", registry=r)
        self.camera_failures = Counter("keycam_camera_failures", "camera failures (each retried)", registry=r)
        self.stage = Summary("keycam_stage_seconds", "time per frame and stage", ["stage"], registry=r)
        self.fps = Gauge("keycam_fps", "frames per second since the start", registry=r)
        self.up = Gauge("keycam_up", "1 while the loop runs", registry=r)
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=r)
        except OSError as error:
            raise ConfigError(f"metrics port {port} on {host} cannot be used ({error.strerror}); choose another "
                              f"[metrics] port, or 0 for none") from None
        self.port = self._server.server_port
        self.up.set(1)

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
                                   ("misconfigured", "checks that found the server keyed for another key")):
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
