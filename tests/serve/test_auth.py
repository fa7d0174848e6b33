"""Bearer keys and scopes: 401 without a good key, 403 without the scope."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from referee.serve import create_app
from referee.settings import Settings
from tests.serve.conftest import bearer

ITEM = {"id": "a1", "text": "hello"}


def test_missing_key_is_401_with_challenge(client: TestClient) -> None:
    r = client.post("/v1/moderate", json=ITEM)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    err = r.json()["error"]
    assert err["type"] == "unauthorized"
    assert "Authorization: Bearer" in err["message"]


@pytest.mark.parametrize("header", ["Bearer rk_nope_nope", "Bearer garbage", "Basic dXNlcjpwdw==", "Bearer "])
def test_bad_key_is_401(client: TestClient, header: str) -> None:
    r = client.post("/v1/moderate", json=ITEM, headers={"Authorization": header})
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"


def test_revoked_key_is_401(client: TestClient, keys: dict[str, str], store) -> None:
    key_id = keys["moderate"].split("_")[1]
    store.revoke_key(key_id)
    r = client.post("/v1/moderate", json=ITEM, headers=bearer(keys["moderate"]))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_read_only_key_cannot_moderate(client: TestClient, keys: dict[str, str]) -> None:
    for path, body in (("/v1/moderate", ITEM), ("/v1/moderations", {"input": "hi"})):
        r = client.post(path, json=body, headers=bearer(keys["read"]))
        assert r.status_code == 403, r.text
        err = r.json()["error"]
        assert err["type"] == "insufficient_scope"
        assert err["missing_scope"] == "moderate"
        assert "'moderate'" in err["message"]


def test_moderate_only_key_cannot_read(client: TestClient, keys: dict[str, str]) -> None:
    made = client.post("/v1/moderate", json=ITEM, headers=bearer(keys["moderate"]))
    assert made.status_code == 200
    r = client.get(f"/v1/decisions/{made.json()['decision_id']}", headers=bearer(keys["moderate"]))
    assert r.status_code == 403 and r.json()["error"]["missing_scope"] == "read"


def test_admin_can_do_everything(client: TestClient, keys: dict[str, str]) -> None:
    h = bearer(keys["admin"])
    made = client.post("/v1/moderate", json=ITEM, headers=h)
    assert made.status_code == 200
    assert client.get(f"/v1/decisions/{made.json()['decision_id']}", headers=h).status_code == 200
    assert client.post("/v1/moderations", json={"input": "x"}, headers=h).status_code == 200


def test_key_with_two_scopes_can_do_both(client: TestClient, keys: dict[str, str]) -> None:
    h = bearer(keys["both"])
    made = client.post("/v1/moderate", json=ITEM, headers=h)
    assert client.get(f"/v1/decisions/{made.json()['decision_id']}", headers=h).status_code == 200


def test_auth_off_admits_anyone(settings: Settings, engine, store) -> None:
    client = TestClient(create_app(settings.model_copy(update={"auth": False}), engine=engine, store=store))
    assert client.post("/v1/moderate", json=ITEM).status_code == 200


def test_health_checks_need_no_key(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_revocation_reaches_a_running_server_after_the_cache_ttl(client: TestClient, keys, store, monkeypatch) -> None:
    from referee.serve import auth

    h = bearer(keys["moderate"])
    assert client.post("/v1/moderate", json=ITEM, headers=h).status_code == 200
    store.revoke_key(keys["moderate"].split("_")[1])
    assert client.post("/v1/moderate", json=ITEM, headers=h).status_code == 200  # still cached
    monkeypatch.setattr(auth, "KEY_CACHE_TTL_S", 0.0)
    client.app.state.referee.key_cache.clear()
    assert client.post("/v1/moderate", json=ITEM, headers=h).status_code == 401
