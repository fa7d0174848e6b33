"""Prometheus metrics of a stream worker, on a registry of its own (no global state).

``referee worker --metrics-port P`` serves them on 127.0.0.1:P. Names start with
``referee_worker_``; ``referee.obs`` (the shared metrics module) may absorb them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

from referee.model import Decision

#: Batch latency buckets, seconds: a lexicon batch takes milliseconds, a model batch up to seconds.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PrometheusMetrics:
    """Items processed (by action), batch latency, errors (by kind), dead letters, lag."""

    def __init__(self, stream: str, group: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = {"stream": stream, "group": group}
        self._labels = labels
        self.items = Counter("referee_worker_items", "Entries moderated and acknowledged, by action.",
                             [*labels, "action"], registry=self.registry)
        self.batch_seconds = Histogram("referee_worker_batch_seconds", "Seconds from a batch read to its ack.",
                                       list(labels), buckets=_BUCKETS, registry=self.registry)
        self.errors = Counter("referee_worker_errors", "Failures by kind: redis, store, item.",
                              [*labels, "kind"], registry=self.registry)
        self.dead = Counter("referee_worker_dead_lettered", "Entries moved to the dead-letter stream, by reason.",
                            [*labels, "reason"], registry=self.registry)
        self.lag = Gauge("referee_worker_consumer_lag", "Entries of the stream not yet delivered to the group "
                         "(XINFO GROUPS lag; -1 when Redis does not report it).", list(labels), registry=self.registry)
        self.pending = Gauge("referee_worker_pending", "Entries delivered but not yet acknowledged in the group.",
                             list(labels), registry=self.registry)

    def batch_done(self, seconds: float, decisions: Sequence[Decision]) -> None:
        self.batch_seconds.labels(**self._labels).observe(seconds)
        for d in decisions:
            self.items.labels(**self._labels, action=d.action.value).inc()

    def error(self, kind: str) -> None:
        self.errors.labels(**self._labels, kind=kind).inc()

    def dead_lettered(self, reason: str, n: int) -> None:
        self.dead.labels(**self._labels, reason=reason).inc(n)

    def group(self, lag: int, pending: int) -> None:
        self.lag.labels(**self._labels).set(lag)
        self.pending.labels(**self._labels).set(pending)

    def serve(self, port: int, host: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` on ``host:port`` from a daemon thread; returns (server, thread)."""
        return start_http_server(port, addr=host, registry=self.registry)
