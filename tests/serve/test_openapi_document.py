"""What the OpenAPI document promises, and the error shapes that keep the promise."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from referee.serve import create_app
from referee.serve.schemas import ErrorResponse, Rejected
from referee.settings import Settings
from tests.serve.conftest import bearer


def _check(body: Any, doc: dict[str, Any], path: str, status: int) -> None:
    """``body`` is an instance of the model the document names for ``status`` (the
    schemathesis suite checks the JSON schemas themselves; this names the model)."""
    ref = doc["paths"][path]["post"]["responses"][str(status)]["content"]["application/json"]["schema"]["$ref"]
    model: type[BaseModel] = {"Rejected": Rejected, "ErrorResponse": ErrorResponse}[ref.rsplit("/", 1)[1]]
    model.model_validate(body)


def test_a_single_invalid_item_is_answered_in_the_documented_422_shape(
    client: TestClient, keys: dict[str, str]
) -> None:
    r = client.post("/v1/moderate", json={"id": "", "text": "x", "surface": "Not A Name", "country": "Germany"},
                    headers=bearer(keys["moderate"]))
    assert r.status_code == 422
    body = r.json()
    _check(body, client.get("/openapi.json").json(), "/v1/moderate", 422)
    assert body["error"]["field"] == "id"  # the first problem, as before
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(None, "id"), (None, "surface"), (None, "country")]


def test_every_422_carries_errors(client: TestClient, keys: dict[str, str]) -> None:
    doc = client.get("/openapi.json").json()
    for path, body in [("/v1/moderate", [1, 2]), ("/v1/moderate", {"items": []}), ("/v1/moderate", {"items": [1]}),
                       ("/v1/moderations", {"input": 3}), ("/v1/moderations", {"input": "x", "extra": 1})]:
        r = client.post(path, json=body, headers=bearer(keys["moderate"]))
        assert r.status_code == 422, (path, body, r.text)
        _check(r.json(), doc, path, 422)
        assert doc["paths"][path]["post"]["responses"]["422"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Rejected"}


def test_bad_bodies_are_documented_400s(client: TestClient, keys: dict[str, str]) -> None:
    doc = client.get("/openapi.json").json()
    for path in ("/v1/moderate", "/v1/moderations"):
        assert "400" in doc["paths"][path]["post"]["responses"]
        r = client.post(path, content=b"{not json", headers={**bearer(keys["moderate"]),
                                                             "Content-Type": "application/json"})
        assert r.status_code == 400
        _check(r.json(), doc, path, 400)


def test_the_document_declares_bearer_auth_and_each_operation_its_scope(app: FastAPI) -> None:
    doc = app.openapi()
    assert doc["components"]["securitySchemes"]["bearer"]["type"] == "http"
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    security = {(path, method): op.get("security") for path, ops in doc["paths"].items() for method, op in ops.items()}
    assert security == {
        ("/v1/moderate", "post"): [{"bearer": ["moderate"]}],
        ("/v1/moderate/upload", "post"): [{"bearer": ["moderate"]}],
        ("/v1/decisions/{decision_id}", "get"): [{"bearer": ["read"]}],
        ("/v1/items/{item_id}/history", "get"): [{"bearer": ["read"]}],
        ("/v1/moderations", "post"): [{"bearer": ["moderate"]}],
        ("/v1/appeals", "post"): [{"bearer": ["moderate"]}],
        ("/healthz", "get"): None,
        ("/readyz", "get"): None,
        ("/metrics", "get"): [{"bearer": ["metrics"]}],
        ("/v1/notices", "post"): [{"bearer": ["trusted_flagger"]}, {"bearer": ["moderate"]}],
        ("/v1/notices/{notice_id}", "get"): [{"bearer": ["trusted_flagger"]}, {"bearer": ["moderate"]},
                                             {"bearer": ["read"]}],
        ("/v1/accounts/{author_id}", "get"): [{"bearer": ["read"]}],
        ("/v1/account-actions", "get"): [{"bearer": ["read"]}],
        ("/v1/quality/precision", "get"): [{"bearer": ["read"]}],
        ("/v1/quality/prevalence/{sample_id}", "get"): [{"bearer": ["read"]}],
        ("/v1/quality/drift", "get"): [{"bearer": ["read"]}],
        ("/v1/shadow/candidates", "get"): [{"bearer": ["read"]}],
        ("/v1/shadow/{candidate}/report", "get"): [{"bearer": ["read"]}],
        ("/v1/experiments/{name}/report", "get"): [{"bearer": ["read"]}],
        ("/v1/experiments/{name}/report.html", "get"): [{"bearer": ["read"]}],
    }
    for (path, method), needed in security.items():  # a route that needs a key documents 401 and 403
        responses = doc["paths"][path][method]["responses"]
        assert ("401" in responses and "403" in responses) == (needed is not None), (path, method)


def test_docs_ask_for_no_key_when_auth_is_off(settings: Settings, engine, store) -> None:
    open_app = create_app(settings.model_copy(update={"auth": False}), engine=engine, store=store)
    doc = open_app.openapi()
    assert "bearer" in doc["components"]["securitySchemes"]
    assert all("security" not in op for ops in doc["paths"].values() for op in ops.values())


def test_a_time_outside_the_utc_calendar_is_422_not_500(client: TestClient, keys: dict[str, str]) -> None:
    # Found by the schemathesis suite: astimezone() overflowed inside the model's validator.
    r = client.post("/v1/moderate", json={"id": "t", "text": "x", "created_at": "0001-01-01T01:00:00+01:04"},
                    headers=bearer(keys["moderate"]))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "created_at"


def test_a_body_that_is_not_utf8_is_a_documented_400_on_every_post(client, keys) -> None:  # type: ignore[no-untyped-def]
    """Found by schemathesis in CI: POST /v1/appeals answered 400 without documenting it."""
    document = client.get("/openapi.json").json()
    for path in ("/v1/moderate", "/v1/moderations", "/v1/appeals"):
        r = client.post(path, content=b"\xff\xfe\xfd", headers={**bearer(keys["admin"]),
                                                                "content-type": "application/json"})
        assert r.status_code == 400, (path, r.status_code, r.text)
        assert "400" in document["paths"][path]["post"]["responses"], path
