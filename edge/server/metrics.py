"""The server's Prometheus metrics (``GET /metrics``): requests by endpoint and status, model run time,
replayed requests, requests and rows per model run, and the guards (memory in flight, open connections,
what each guard refused). Each application has its own registry.
"""

from __future__ import annotations

import prometheus_client as prom
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge.server.connections import ConnectionStats
from edge.server.limits import Budget


class _Guards:
    """/metrics' view of the bounds: memory in flight, open connections, and what each guard refused."""

    def __init__(self, budget: Budget, connections: ConnectionStats) -> None:
        self.budget, self.connections = budget, connections

    def collect(self):
        yield GaugeMetricFamily("keycam_server_inflight_bytes", "bytes held by requests in flight",
                                value=self.budget.used)
        yield GaugeMetricFamily("keycam_server_connections", "open connections", value=self.connections.open)
        yield CounterMetricFamily("keycam_server_busy_refusals", "requests answered 503: in-flight memory spent",
                                  value=self.budget.refused)
        closed = CounterMetricFamily("keycam_server_closed_connections", "connections a guard closed",
                                     labels=["reason"])
        for reason, value in [("header_timeout", self.connections.head_timeouts),
                              ("evicted_idle", self.connections.evicted), ("over_cap", self.connections.refused),
                              ("unread_body", self.connections.unread_bodies)]:
            closed.add_metric([reason], value)
        yield closed


class ServerMetrics:
    """One application's counters and histograms, in its own registry."""

    def __init__(self, budget: Budget, connections: ConnectionStats) -> None:
        self.registry = registry = prom.CollectorRegistry()
        self.requests = prom.Counter("keycam_server_requests", "HTTP requests by endpoint and status",
                                     ["endpoint", "status"], registry=registry)
        self.infer_seconds = prom.Histogram("keycam_server_inference_seconds", "model run time per request",
                                            ["model"], registry=registry,
                                            buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5))
        self.replays = prom.Counter("keycam_server_replayed_requests", "requests answered from the replay cache",
                                    registry=registry)
        self.batch_sizes = prom.Histogram("keycam_server_batch_requests", "requests per model run (dynamic batching)",
                                          registry=registry, buckets=(1, 2, 4, 8, 16, 32, 64))
        self.batch_rows = prom.Histogram("keycam_server_batch_rows", "rows per model run (at most --max-rows)",
                                         registry=registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        registry.register(_Guards(budget, connections))

    def on_batch(self, requests: int, rows: int) -> None:
        """One model run of ``requests`` requests, ``rows`` rows in all."""
        self.batch_sizes.observe(requests)
        self.batch_rows.observe(rows)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (``prom.CONTENT_TYPE_LATEST``)."""
        return prom.generate_latest(self.registry)
