"""``Metrics``: the engine's observer, its own registry, LLM usage, the standalone endpoint, multiprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest, multiprocess

from referee.engine import Engine
from referee.engine.observe import NO_OBSERVER
from referee.errors import ConfigError
from referee.model import ContentItem, Signal
from referee.obs import Metrics, start_metrics_server
from referee.plugins.llm.transport import Usage
from referee.policy import Policy
from tests.conftest import KeywordDetector

REPO = Path(__file__).resolve().parents[2]


def value(metrics: Metrics, name: str, **labels: str) -> float:
    """A sample's value, 0 when the series does not exist (yet)."""
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def item(text: str, id: str = "i1", surface: str = "comment") -> ContentItem:
    return ContentItem(id=id, text=text, surface=surface)


def test_an_engine_without_an_observer_has_the_no_op(small_policy: Policy) -> None:
    with Engine(small_policy, [KeywordDetector()]) as engine:
        assert engine.observer is NO_OBSERVER
        assert engine.moderate(item("vile vile")).action.value == "hold_for_review"


def test_decisions_are_counted_by_action_category_and_bounded_surface(small_policy: Policy) -> None:
    metrics = Metrics()
    with Engine(small_policy, [KeywordDetector()]) as engine:
        metrics.watch(engine)
        assert engine.observer is metrics
        engine.moderate_many([item("vile vile vile vile", "a"), item("hello", "b"),
                              item("buy buy", "c", surface="a_surface_nobody_declared")])
    assert value(metrics, "referee_decisions_total", action="remove", surface="comment") == 1
    assert value(metrics, "referee_decisions_total", action="allow", surface="comment") == 1
    # An undeclared surface is counted as the one whose rules it gets, not as a new series.
    assert value(metrics, "referee_decisions_total", action="hold_for_review", surface="default") == 1
    assert value(metrics, "referee_decision_categories_total", category="hate", action="remove",
                 surface="comment") == 1
    assert value(metrics, "referee_decision_categories_total", category="spam", action="hold_for_review",
                 surface="default") == 1
    exposed = metrics.exposition().decode()
    assert "a_surface_nobody_declared" not in exposed
    # Each detector and stage is timed once per batch, and counts the views it was handed.
    assert value(metrics, "referee_detector_duration_seconds_count", detector="keyword", stage="detect") == 1
    assert value(metrics, "referee_detector_items_total", detector="keyword", stage="detect") == 3
    assert value(metrics, "referee_stage_duration_seconds_count", stage="detect") == 1


def test_a_head_answered_again_is_not_a_new_decision(small_policy: Policy, tmp_path: Path) -> None:
    from referee.store import DecisionStore

    store = DecisionStore(f"sqlite:///{tmp_path / 'r.db'}")
    metrics = Metrics()
    try:
        with Engine(small_policy, [KeywordDetector()], sink=store, observer=metrics) as engine:
            metrics.watch(engine)
            engine.moderate(item("vile vile vile vile"))
            engine.moderate(item("vile vile vile vile"))  # idempotent: the stored head
    finally:
        store.close()
    assert value(metrics, "referee_decisions_total", action="remove", surface="comment") == 1


def test_failures_and_timeouts_are_counted_by_detector_and_make_provisional_decisions(small_policy: Policy) -> None:
    metrics = Metrics()
    with Engine(small_policy, [KeywordDetector(fail_on="boom")]) as engine:
        metrics.watch(engine)
        engine.moderate_many([item("boom", "a"), item("fine", "b"), item("boom again", "c")])
    assert value(metrics, "referee_detector_failures_total", detector="keyword", kind="error") == 2
    assert value(metrics, "referee_decisions_provisional_total", surface="comment") == 2

    slow = KeywordDetector(delay_s=0.3)
    slow.timeout_s = 0.05
    metrics = Metrics()
    with Engine(small_policy, [slow]) as engine:
        metrics.watch(engine)
        engine.moderate_many([item("a", "a"), item("b", "b")])
    assert value(metrics, "referee_detector_failures_total", detector="keyword", kind="timeout") == 2
    assert value(metrics, "referee_detector_failures_total", detector="keyword", kind="error") == 0
    # A timeout's time is how long the engine waited, not the detector's eventual finish.
    waited = value(metrics, "referee_detector_duration_seconds_sum", detector="keyword", stage="detect")
    assert 0.04 < waited < 0.3


class MeteredDetector(KeywordDetector):
    """Reports usage the way the LLM detector does (``usage.snapshot()``), one call per item."""

    name = "metered"

    def __init__(self) -> None:
        super().__init__()
        self.usage = Usage()

    def detect(self, item: ContentItem) -> list[Signal]:
        self.usage.add(calls=1, prompt_tokens=120, completion_tokens=30, cost=0.0025)
        if "again" in item.text:
            self.usage.add(retries=1)
        return super().detect(item)


def test_llm_calls_tokens_and_cost_come_from_the_detectors_usage() -> None:
    policy = Policy.from_yaml(
        "id: m\nversion: '1'\ncategories: {hate: {description: h}, spam: {description: s}}\n"
        "detectors: {metered: {}}\n"
        "surfaces:\n  default:\n    rules:\n      - {id: r, categories: '*', threshold: 0.5, action: remove}\n")
    detector = MeteredDetector()
    detector.usage.add(calls=7, prompt_tokens=1000)  # before the metrics watched: not counted
    metrics = Metrics()
    with Engine(policy, [detector]) as engine:
        metrics.watch(engine)
        engine.moderate_many([item("one", "a"), item("two again", "b")])
        engine.moderate(item("three", "c"))
    assert value(metrics, "referee_llm_calls_total", detector="metered", outcome="calls") == 3
    assert value(metrics, "referee_llm_calls_total", detector="metered", outcome="retries") == 1
    assert value(metrics, "referee_llm_tokens_total", detector="metered", kind="prompt") == 360
    assert value(metrics, "referee_llm_tokens_total", detector="metered", kind="completion") == 90
    assert value(metrics, "referee_llm_cost_total", detector="metered") == pytest.approx(0.0075)


def test_each_metrics_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.observe_request("/healthz", "GET", 200, 0.001)
    a.observe_request("/healthz", "GET", 200, 0.002)
    b.set_queue_lag("items", 3.5)
    b.set_queue_lag("items", -1.0)  # a clock skew is no negative lag
    assert value(a, "referee_http_requests_total", route="/healthz", method="GET", status="200") == 2
    assert value(b, "referee_http_requests_total", route="/healthz", method="GET", status="200") == 0
    assert value(a, "referee_http_request_duration_seconds_count", route="/healthz") == 2
    assert value(b, "referee_queue_lag_seconds", stream="items") == 0.0
    b.set_queue_lag("items", 2.0)
    assert value(b, "referee_queue_lag_seconds", stream="items") == 2.0


def test_a_worker_serves_its_metrics_on_loopback_only() -> None:
    metrics = Metrics()
    metrics.set_queue_lag("items", 1.25)
    server = metrics.serve(0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as answer:
            body = answer.read().decode()
        assert 'referee_queue_lag_seconds{stream="items"} 1.25' in body
    finally:
        server.close()
    with pytest.raises(ConfigError, match="not a loopback address"):
        start_metrics_server(metrics, 0, host="0.0.0.0")
    with pytest.raises(ConfigError, match="0..65535"):
        metrics.serve(70000)


def test_multiprocess_mode_needs_the_environment_set_before_import(tmp_path: Path) -> None:
    # This process imported prometheus_client without PROMETHEUS_MULTIPROC_DIR: figures would stay
    # in memory, per process, while the scrape reads the files: refused, naming the fix.
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR"):
        Metrics(multiprocess_dir=tmp_path)


@pytest.mark.slow
def test_worker_processes_figures_are_summed(tmp_path: Path) -> None:
    """Two processes count into one directory at once; a scrape of that directory sees the sum."""
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from referee.obs import Metrics
        metrics = Metrics(multiprocess_dir=Path(sys.argv[1]))
        for _ in range(int(sys.argv[2])):
            metrics.observe_request("/v1/moderate", "POST", 200, 0.004)
    """)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    workers = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(n)], env=env, cwd=REPO)
               for n in (3, 4)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    exposed = generate_latest(registry).decode()
    assert 'referee_http_requests_total{method="POST",route="/v1/moderate",status="200"} 7.0' in exposed
    assert 'referee_http_request_duration_seconds_count{route="/v1/moderate"} 7.0' in exposed


def test_drift_gauges_are_replaced_as_a_whole() -> None:
    from referee.online.drift import Gauge

    metrics = Metrics()
    labels = {"kind": "score", "surface": "comment", "category": "hate"}
    metrics.set_drift([Gauge("referee_drift_psi", labels, 0.3), Gauge("referee_drift_alert", labels, 2.0),
                       Gauge("referee_language_share", {"surface": "comment", "language": "en"}, 0.9)])
    assert metrics.registry.get_sample_value("referee_drift_psi", labels) == 0.3
    assert metrics.registry.get_sample_value("referee_drift_alert", labels) == 2.0
    assert b'referee_language_share{language="en",surface="comment"} 0.9' in metrics.exposition()
    metrics.set_drift([Gauge("referee_drift_psi", {**labels, "category": "spam"}, 0.01)])
    assert metrics.registry.get_sample_value("referee_drift_psi", labels) is None  # gone with its computation
    assert metrics.registry.get_sample_value("referee_drift_alert", labels) is None
