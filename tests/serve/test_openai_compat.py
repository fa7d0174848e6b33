"""POST /v1/moderations in OpenAI's shape, including the real openai client over a loopback server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import openai
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from referee.policy import Policy
from referee.serve.openai_compat import category_map
from tests.conftest import REPO
from tests.serve.conftest import bearer

#: Every category OpenAI's Moderation API answers, as the openai package models them.
OPENAI_NAMES = {
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence",
    "violence/graphic",
}


def test_mapping_covers_every_openai_category() -> None:
    assert set(category_map(Policy.from_file(REPO / "policies" / "default.yaml"))) == OPENAI_NAMES
    fields = {a or n for n, a in ((n, f.alias) for n, f in openai.types.moderation.Categories.model_fields.items())}
    assert fields == OPENAI_NAMES


def test_single_string_input(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/moderations", json={"input": "you are #hate"}, headers=bearer(keys["moderate"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"].startswith("modr-")
    assert body["model"] == "referee/default@2026.11.0"
    [result] = body["results"]
    assert result["flagged"] is True
    assert set(result["categories"]) == OPENAI_NAMES == set(result["category_scores"])
    assert result["categories"]["hate"] is True
    assert result["categories"]["hate/threatening"] is False  # needs violence too
    assert result["category_scores"]["hate"] == pytest.approx(0.95)
    assert result["category_scores"]["hate/threatening"] == pytest.approx(0.01)
    assert result["category_applied_input_types"]["hate"] == ["text"]
    assert result["referee"]["action"] == "remove"


def test_conjunctions_and_spam_extra(client: TestClient, keys: dict[str, str]) -> None:
    texts = ["#hate #violence", "#illegal_goods #violence", "#spam", "all good"]
    r = client.post("/v1/moderations", json={"input": texts}, headers=bearer(keys["moderate"]))
    threat, illicit, spam, clean = r.json()["results"]
    assert threat["categories"]["hate/threatening"] and threat["categories"]["violence"]
    assert threat["category_scores"]["hate/threatening"] == pytest.approx(0.95)
    assert illicit["categories"]["illicit"] and illicit["categories"]["illicit/violent"]
    assert spam["flagged"] is True and not any(spam["categories"].values())
    assert spam["referee"]["categories"] == ["spam"]
    assert spam["referee"]["category_scores"]["spam"] == pytest.approx(0.95)
    assert clean["flagged"] is False and not any(clean["categories"].values())


def test_surface_from_extra_field(client: TestClient, keys: dict[str, str]) -> None:
    """In a DM, harassment is labelled (still flagged); the stored decision records the surface."""
    body = {"input": "#harassment", "referee": {"surface": "message"}}
    r = client.post("/v1/moderations", json=body, headers=bearer(keys["admin"]))
    result = r.json()["results"][0]
    assert result["referee"]["action"] == "label"
    stored = client.get(f"/v1/decisions/{result['referee']['decision_id']}", headers=bearer(keys["admin"]))
    assert stored.json()["surface"] == "message"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": 3}, "input"),
        ({"input": []}, "input"),
        ({"input": "x", "referee": {"surface": "Bad Surface"}}, "referee.surface"),
        ({"input": "x", "temperature": 1}, "temperature"),
    ],
)
def test_bad_requests_name_the_field(client: TestClient, keys: dict[str, str], body: dict, field: str) -> None:
    r = client.post("/v1/moderations", json=body, headers=bearer(keys["moderate"]))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"].startswith(field)


def test_too_many_inputs_is_413(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/moderations", json={"input": ["a"] * 6}, headers=bearer(keys["moderate"]))
    assert r.status_code == 413 and r.json()["error"]["field"] == "input"


# -- the real openai package against a real server ---------------------------
@pytest.fixture
def live_url(app: FastAPI) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


def test_openai_client_drop_in(live_url: str, keys: dict[str, str]) -> None:
    client = openai.OpenAI(base_url=live_url, api_key=keys["moderate"], max_retries=0)
    response = client.moderations.create(input=["I will #violence you", "what a tune"])
    assert response.id.startswith("modr-")
    first, second = response.results
    assert first.flagged is True
    assert first.categories.violence is True
    assert first.categories.hate is False
    assert first.category_scores.violence == pytest.approx(0.95)
    assert first.category_applied_input_types.violence == ["text"]
    assert second.flagged is False
    assert second.categories.self_harm_intent is False
    extras = first.model_extra["referee"]
    assert extras["decision_id"].startswith("dec_")


def test_openai_client_sees_our_errors(live_url: str, keys: dict[str, str]) -> None:
    bad = openai.OpenAI(base_url=live_url, api_key="rk_wrong_key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.moderations.create(input="hi")
    assert "invalid or revoked API key" in str(info.value)
    reader = openai.OpenAI(base_url=live_url, api_key=keys["read"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        reader.moderations.create(input="hi")


def test_the_category_mapping_is_policy_data_checked_by_lint(tmp_path) -> None:
    from referee.errors import PolicyError

    text = (REPO / "policies" / "default.yaml").read_text(encoding="utf-8")
    bad = text.replace("  sexual/minors: [sexual_minors]", "  sexual/minors: [sexual_minor]")
    (tmp_path / "p.yaml").write_text(bad, encoding="utf-8")
    import pytest as _pytest

    with _pytest.raises(PolicyError, match=r"p.yaml:\d+: error: openai_categories.sexual/minors\[0\]: .*'sexual_minor'"):
        Policy.from_file(tmp_path / "p.yaml")
    # A policy with no mapping answers under its own category names.
    own = Policy.from_yaml("id: t\nversion: '1'\ncategories: {scam: {description: s}}\n"
                           "surfaces:\n  default:\n    rules:\n      - {id: r, categories: scam, action: remove}\n")
    assert category_map(own) == {"scam": ("scam",)}
