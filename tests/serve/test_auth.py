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


def test_concurrent_requests_with_a_cold_key_share_one_lookup(app, store, keys, monkeypatch) -> None:
    """When a busy client's cached key expires, its open requests wait on one store lookup."""
    import asyncio

    import httpx

    calls: list[str] = []
    real = store.check_key

    def counting(key: str):  # type: ignore[no-untyped-def]
        calls.append(key)
        import time

        time.sleep(0.05)  # a lookup slow enough for the others to arrive while it runs
        return real(key)

    monkeypatch.setattr(store, "check_key", counting)

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            good = [client.post("/v1/moderate", json={"id": f"c{i}", "text": "hi"}, headers=bearer(keys["moderate"]))
                    for i in range(20)]
            bad = [client.post("/v1/moderate", json={"id": "x", "text": "hi"},
                               headers=bearer(keys["moderate"][:-2] + "zz")) for _ in range(3)]
            return [r.status_code for r in await asyncio.gather(*good, *bad)]

    codes = asyncio.run(burst())
    assert codes == [200] * 20 + [401] * 3
    assert calls.count(keys["moderate"]) == 1  # twenty requests, one lookup
    assert len(calls) == 2  # the bad key: one shared lookup too, and never cached
    assert not app.state.referee.key_lookups
