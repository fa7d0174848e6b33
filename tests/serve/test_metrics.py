"""The service's telemetry: GET /metrics behind the metrics scope, request ids, per-route series."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from referee.engine import Engine
from referee.obs import JsonFormatter, Metrics
from referee.serve import create_app
from referee.settings import Settings
from referee.store import DecisionStore
from tests.serve.conftest import bearer


def series(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one series in a text exposition."""
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


@pytest.fixture
def metrics_key(store: DecisionStore) -> str:
    return store.create_key("prometheus", ["metrics"])


def test_metrics_needs_the_metrics_scope(client: TestClient, keys: dict[str, str], metrics_key: str) -> None:
    r = client.get("/metrics")
    assert r.status_code == 401 and r.headers["www-authenticate"].lower().startswith("bearer")
    r = client.get("/metrics", headers=bearer(keys["both"]))  # moderate + read: still not metrics
    assert r.status_code == 403 and r.json()["error"]["missing_scope"] == "metrics"
    for key in (metrics_key, keys["admin"]):
        r = client.get("/metrics", headers=bearer(key))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    # a metrics key reads nothing else
    assert client.post("/v1/moderate", json={"id": "c", "text": "hi"}, headers=bearer(metrics_key)).status_code == 403


def test_without_auth_metrics_are_open_like_everything_else(settings: Settings, engine: Engine,
                                                           store: DecisionStore) -> None:
    app = create_app(settings.model_copy(update={"auth": False}), engine=engine, store=store)
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 200


def test_requests_are_counted_by_route_template_method_and_status(
    client: TestClient, keys: dict[str, str], metrics_key: str
) -> None:
    admin = bearer(keys["admin"])
    decision = client.post("/v1/moderate", json={"id": "c1", "text": "you are #hate"}, headers=admin).json()
    assert client.get(f"/v1/decisions/{decision['decision_id']}", headers=admin).status_code == 200
    for n in range(3):
        assert client.get(f"/v1/decisions/nope{n}", headers=admin).status_code == 404
        assert client.get(f"/no/such/path/{n}").status_code == 404
    assert client.post("/v1/moderate", content=b"{", headers={**admin, "content-type": "application/json"}
                       ).status_code == 400
    text = client.get("/metrics", headers=bearer(metrics_key)).text
    requests = series(text, "referee_http_requests_total")
    assert requests['method="POST",route="/v1/moderate",status="200"'] == 1
    assert requests['method="POST",route="/v1/moderate",status="400"'] == 1
    assert requests['method="GET",route="/v1/decisions/{decision_id}",status="200"'] == 1
    assert requests['method="GET",route="/v1/decisions/{decision_id}",status="404"'] == 3
    # random paths share one series: a scanner cannot grow the registry
    assert requests['method="GET",route="unmatched",status="404"'] == 3
    assert "nope0" not in text and "/no/such" not in text
    latency = series(text, "referee_http_request_duration_seconds_count")
    assert latency['route="/v1/moderate"'] == 2
    decisions = series(text, "referee_decisions_total")
    assert decisions['action="remove",surface="comment"'] == 1
    assert series(text, "referee_detector_duration_seconds_count")['detector="hashtag",stage="detect"'] == 1


def test_a_sane_request_id_is_echoed_and_anything_else_replaced(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123.9:x"}).headers["x-request-id"] == "abc-123.9:x"
    for bad in ("has space", "x" * 129, "quote\"d", ""):
        rid = client.get("/healthz", headers={"X-Request-Id": bad}).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid), (bad, rid)
    first, second = (client.get("/healthz").headers["x-request-id"] for _ in range(2))
    assert first != second
    # errors carry it too
    assert re.fullmatch(r"[0-9a-f]{32}", client.get("/nowhere").headers["x-request-id"])


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def log_lines() -> Iterator[_Lines]:
    handler = _Lines()
    logger = logging.getLogger("referee")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


def test_every_log_line_of_a_request_carries_its_id(app: FastAPI, keys: dict[str, str],
                                                    log_lines: _Lines) -> None:
    @app.get("/v1/test-logs", include_in_schema=False)
    async def logs_twice() -> dict[str, bool]:
        logging.getLogger("referee.test").info("first")
        logging.getLogger("referee.test").warning("second", extra={"item_count": 2})
        return {"ok": True}

    with TestClient(app) as client:
        client.get("/v1/test-logs", headers={"X-Request-Id": "req-42"})
        client.get("/v1/test-logs", headers={"X-Request-Id": "req-43"})
    ours = [line for line in log_lines.lines if line["logger"] == "referee.test"]
    assert [(line["message"], line["request_id"]) for line in ours] == [
        ("first", "req-42"), ("second", "req-42"), ("first", "req-43"), ("second", "req-43")]
    assert ours[1]["item_count"] == 2 and ours[1]["level"] == "WARNING"


def test_a_passed_metrics_object_backs_the_endpoint(settings: Settings, engine: Engine, store: DecisionStore,
                                                    keys: dict[str, str]) -> None:
    metrics = Metrics()
    app = create_app(settings, engine=engine, store=store, metrics=metrics)
    with TestClient(app) as client:
        client.post("/v1/moderate", json={"id": "c9", "text": "#spam now"}, headers=bearer(keys["admin"]))
    assert engine.observer is metrics
    assert metrics.registry.get_sample_value(
        "referee_http_requests_total", {"route": "/v1/moderate", "method": "POST", "status": "200"}) == 1
