"""A stream worker's series, on the registry of the process's ``referee.obs.Metrics``.

``referee worker --metrics-port P`` serves them, beside the engine's own series
(per-detector and per-stage latency, decisions by action and category) and the
shared ``referee_queue_lag_seconds``, on 127.0.0.1:P. Names start with
``referee_worker_``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

from referee.model import Decision
from referee.obs import Metrics

#: Batch latency buckets, seconds: a lexicon batch takes milliseconds, a model batch up to seconds.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PrometheusMetrics:
    """Items processed (by action), batch latency, errors (by kind), dead letters, lag, consumers removed."""

    def __init__(self, stream: str, group: str, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics()
        self.registry = self.metrics.registry
        labels = {"stream": stream, "group": group}
        self._stream = stream
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
        self.forgotten = Counter("referee_worker_consumers_removed", "Idle consumers with nothing pending "
                                 "removed from the group (XGROUP DELCONSUMER): dead workers' names.",
                                 list(labels), registry=self.registry)
        self.pending = Gauge("referee_worker_pending", "Entries delivered but not yet acknowledged in the group.",
                             list(labels), registry=self.registry)

    def batch_done(self, seconds: float, decisions: Sequence[Decision], oldest_ms: int | None = None) -> None:
        self.batch_seconds.labels(**self._labels).observe(seconds)
        for d in decisions:
            self.items.labels(**self._labels, action=d.action.value).inc()
        if oldest_ms is not None:  # stream ids start with the milliseconds the entry was added at
            self.metrics.set_queue_lag(self._stream, time.time() - oldest_ms / 1000)

    def error(self, kind: str) -> None:
        self.errors.labels(**self._labels, kind=kind).inc()

    def dead_lettered(self, reason: str, n: int) -> None:
        self.dead.labels(**self._labels, reason=reason).inc(n)

    def consumers_forgotten(self, n: int) -> None:
        self.forgotten.labels(**self._labels).inc(n)

    def group(self, lag: int, pending: int) -> None:
        self.lag.labels(**self._labels).set(lag)
        self.pending.labels(**self._labels).set(pending)
        if lag == 0 and pending == 0:
            self.metrics.set_queue_lag(self._stream, 0.0)
