"""Prometheus metrics for the HTTP service and the stream workers: one ``Metrics`` object.

A ``Metrics`` owns its ``CollectorRegistry`` (no module globals), so two apps or
two tests in one process each count their own. It is the engine's ``Observer``
(detector and stage latencies, decisions by action, category and surface,
detector failures, provisional decisions), the HTTP middleware's counter
(requests by route, method and status, latency per route), the workers' gauge
of queue lag, and it reads the LLM detector's usage (calls, tokens, cost).

Label values are bounded, so a client cannot grow the series without limit:
routes are route templates (``/v1/decisions/{decision_id}``; anything that
matched no route is ``unmatched``), surfaces are those the policy names (any
other is counted as ``default``, whose rules it gets), categories and actions
come from the policy.

Several worker processes (``referee serve --workers N``) share their figures
through prometheus_client's multiprocess mode: the parent sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start, and ``Metrics`` then
answers a scrape with every process's figures summed, whichever worker gets it.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
    values,
)
from prometheus_client.core import GaugeMetricFamily

from referee.errors import ConfigError
from referee.model import Decision

if TYPE_CHECKING:
    from referee.engine import Engine

#: Seconds; an HTTP answer is a few ms, a detector batch up to seconds, an LLM call up to tens of seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: The label of a request that matched no route (a 404 for a random path must not make a series).
UNMATCHED = "unmatched"
#: The surface label of a decision about a surface the policy does not name.
OTHER_SURFACE = "default"
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
#: The usage figures an LLM detector reports (``detector.usage.snapshot()``), and the series each feeds.
_USAGE = ("calls", "retries", "failures", "cache_hits", "prompt_tokens", "completion_tokens", "cost")


class _UsageSource(Protocol):
    def snapshot(self) -> dict[str, float]: ...


class _Gauge(Protocol):
    """A value computed elsewhere, now and then (``referee.online.drift.Gauge``)."""

    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def value(self) -> float: ...


class _Snapshot:
    """Gauges replaced as a whole each time they are recomputed (drift): a label set that
    left the last computation leaves the exposition too, which a ``Gauge`` would keep."""

    def __init__(self, help_text: dict[str, str]) -> None:
        self._help = help_text
        self._gauges: tuple[_Gauge, ...] = ()

    def replace(self, gauges: Sequence[_Gauge]) -> None:
        self._gauges = tuple(gauges)

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        families: dict[str, GaugeMetricFamily] = {}
        for g in self._gauges:
            family = families.get(g.name)
            if family is None:
                family = families[g.name] = GaugeMetricFamily(
                    g.name, self._help.get(g.name, g.name), labels=sorted(g.labels))
            family.add_metric([g.labels[k] for k in sorted(g.labels)], g.value)
        return list(families.values())


_DRIFT_HELP = {
    "referee_drift_psi": "Population stability index of the current window against the reference, by kind "
                         "(score or language), surface and category.",
    "referee_drift_alert": "0 ok (or too few items), 1 warn, 2 alert, by kind, surface and category.",
    "referee_language_share": "Share of the current window's items per guessed language, by surface.",
}


@dataclass
class MetricsServer:
    """A standalone ``/metrics`` endpoint (for a stream worker); ``close()`` stops it."""

    host: str
    port: int
    _server: Any
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class Metrics:
    """Every series referee exposes, on a registry of its own.

    ``multiprocess_dir``: the directory ``PROMETHEUS_MULTIPROC_DIR`` names (settings read it),
    for a process that is one of several workers; the figures are then written there and a
    scrape sums every process's.
    """

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        if multiprocess_dir is not None:
            if getattr(values.ValueClass, "__name__", "") != "MmapedValue":
                raise ConfigError(
                    f"metrics_multiprocess_dir is {multiprocess_dir}, but prometheus_client was imported without "
                    "PROMETHEUS_MULTIPROC_DIR in the environment; export it before the process starts (as "
                    "`referee serve --workers N` does), or leave it unset for one process")
            if not multiprocess_dir.is_dir():
                raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR={multiprocess_dir} is not a directory; create it (empty) "
                                  "before the workers start")
            multiprocess.MultiProcessCollector(self.registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
            # The series themselves write to the shared files; registering them here as well would count twice.
            into = CollectorRegistry(auto_describe=True)
        else:
            into = self.registry
        self._lock = threading.Lock()
        self._surfaces: frozenset[str] = frozenset()
        self._usage: dict[str, tuple[_UsageSource, dict[str, float]]] = {}
        self._drift = _Snapshot(_DRIFT_HELP)
        self.registry.register(self._drift)

        self.http_requests = Counter(
            "referee_http_requests", "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"], registry=into)
        self.http_latency = Histogram(
            "referee_http_request_duration_seconds", "Time from a request's arrival to its answer's last byte.",
            ["route"], buckets=LATENCY_BUCKETS, registry=into)
        self.detector_latency = Histogram(
            "referee_detector_duration_seconds", "One detector's time over one batch, by detector and plan stage.",
            ["detector", "stage"], buckets=LATENCY_BUCKETS, registry=into)
        self.detector_items = Counter(
            "referee_detector_items", "Views (items, or parts of them) handed to each detector.",
            ["detector", "stage"], registry=into)
        self.detector_failures = Counter(
            "referee_detector_failures", "Views a detector failed on, by kind (error or timeout).",
            ["detector", "kind"], registry=into)
        self.stage_latency = Histogram(
            "referee_stage_duration_seconds", "One plan stage's wall time over one batch.",
            ["stage"], buckets=LATENCY_BUCKETS, registry=into)
        self.decisions = Counter(
            "referee_decisions", "Decisions made (not heads answered again), by action and surface.",
            ["action", "surface"], registry=into)
        self.decision_categories = Counter(
            "referee_decision_categories", "Categories decisions were made for, by category, action and surface.",
            ["category", "action", "surface"], registry=into)
        self.provisional = Counter(
            "referee_decisions_provisional", "Decisions made while a detector failed or an async stage was pending.",
            ["surface"], registry=into)
        self.queue_lag = Gauge(
            "referee_queue_lag_seconds", "How far behind a stream worker is: age of the oldest item it has not "
            "answered yet.", ["stream"], registry=into, multiprocess_mode="max")
        self.llm_calls = Counter(
            "referee_llm_calls", "Calls an LLM detector made to its model server, by outcome.",
            ["detector", "outcome"], registry=into)
        self.llm_tokens = Counter(
            "referee_llm_tokens", "Tokens the model servers reported, by kind (prompt or completion).",
            ["detector", "kind"], registry=into)
        self.llm_cost = Counter(
            "referee_llm_cost", "What the LLM calls cost, in the unit of the detector's configured prices.",
            ["detector"], registry=into)
        # Children by label values: labels() takes a lock and builds a key; a dict lookup is cheaper.
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}

    # -- what the edge reports -------------------------------------------------------------
    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One HTTP request answered (the middleware calls this)."""
        key = (route, method, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self.http_requests.labels(route, method if method in _METHODS else "other", str(status))
            self._request_children[key] = counter
        counter.inc()
        latency = self._latency_children.get(route)
        if latency is None:
            latency = self._latency_children[route] = self.http_latency.labels(route)
        latency.observe(seconds)

    def set_queue_lag(self, stream: str, seconds: float) -> None:
        """A stream worker's lag: the age of the oldest item it has read and not answered (0 when idle)."""
        self.queue_lag.labels(stream).set(max(0.0, seconds))

    def set_drift(self, gauges: Sequence[_Gauge]) -> None:
        """The latest drift report's gauges (``referee.online.drift.drift_gauges``), replacing
        the previous ones; the HTTP service's log follower recomputes them now and then."""
        self._drift.replace(gauges)

    def watch(self, engine: Engine) -> None:
        """Observe this engine: become its observer, label surfaces by its policy, and read the
        usage of its detectors that report one (the LLM detector's calls, tokens and cost)."""
        self._surfaces = frozenset(engine.policy.document.surfaces)
        for detector in engine.detectors:
            usage = getattr(detector, "usage", None)
            if usage is not None and callable(getattr(usage, "snapshot", None)):
                self._usage[detector.name] = (usage, dict(usage.snapshot()))
        engine.observer = self

    # -- the engine's Observer -------------------------------------------------------------
    def on_detector(self, name: str, stage: str, seconds: float, n_items: int, failed: int,
                    timed_out: bool) -> None:
        self.detector_latency.labels(name, stage).observe(seconds)
        self.detector_items.labels(name, stage).inc(n_items)
        if failed:
            self.detector_failures.labels(name, "timeout" if timed_out else "error").inc(failed)
        if name in self._usage:
            self._read_usage(name)

    def on_stage(self, stage: str, seconds: float, n_items: int) -> None:
        self.stage_latency.labels(stage).observe(seconds)

    def on_decisions(self, decisions: Sequence[Decision]) -> None:
        for d in decisions:
            surface = d.surface if d.surface in self._surfaces else OTHER_SURFACE
            action = str(d.action.value)
            self.decisions.labels(action, surface).inc()
            for category in d.categories:
                self.decision_categories.labels(category, action, surface).inc()
            if d.provisional:
                self.provisional.labels(surface).inc()

    def _read_usage(self, name: str) -> None:
        """Add what the detector's usage grew by since the last read (its counters only grow)."""
        with self._lock:
            usage, last = self._usage[name]
            now = dict(usage.snapshot())
            grown = {k: now.get(k, 0.0) - last.get(k, 0.0) for k in _USAGE}
            self._usage[name] = (usage, now)
        for outcome in ("calls", "retries", "failures", "cache_hits"):
            if grown[outcome] > 0:
                self.llm_calls.labels(name, outcome).inc(grown[outcome])
        for kind in ("prompt", "completion"):
            if grown[f"{kind}_tokens"] > 0:
                self.llm_tokens.labels(name, kind).inc(grown[f"{kind}_tokens"])
        if grown["cost"] > 0:
            self.llm_cost.labels(name).inc(grown["cost"])

    # -- exposition ------------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The text exposition format, as ``GET /metrics`` answers (``CONTENT_TYPE``)."""
        return bytes(generate_latest(self.registry))

    def serve(self, port: int, host: str = "127.0.0.1", *, public: bool = False) -> MetricsServer:
        """A ``/metrics`` endpoint of its own on ``host:port``, in a daemon thread (for a stream
        worker, which has no HTTP service). It has no authentication, so it binds only to a
        loopback address unless ``public=True`` says the network around it is trusted."""
        return start_metrics_server(self, port, host, public=public)


#: The content type of ``Metrics.exposition()``.
CONTENT_TYPE = CONTENT_TYPE_LATEST


def start_metrics_server(metrics: Metrics, port: int, host: str = "127.0.0.1", *,
                         public: bool = False) -> MetricsServer:
    """See ``Metrics.serve``. ``port=0`` picks a free port (``MetricsServer.port`` says which)."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"metrics port must be 0..65535, got {port}")
    if not public and not _is_loopback(host):
        raise ConfigError(f"metrics host {host!r} is not a loopback address, and the metrics endpoint has no "
                          "authentication; bind 127.0.0.1 and scrape through a tunnel, or pass public=True "
                          "(--metrics-public) where the network is trusted")
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    return MetricsServer(host=host, port=int(server.server_address[1]), _server=server, _thread=thread)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
