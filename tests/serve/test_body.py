"""Body limits and unreadable bodies: 413, 400, each naming the problem."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.testclient import TestClient

from tests.serve.conftest import bearer


def test_body_over_limit_is_413(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/moderate", json={"id": "big", "text": "x" * 5000}, headers=bearer(keys["moderate"]))
    assert r.status_code == 413
    err = r.json()["error"]
    assert err["type"] == "payload_too_large"
    assert "limit of 4096 bytes" in err["message"]


def test_streamed_body_over_limit_is_413(client: TestClient, keys: dict[str, str]) -> None:
    """No Content-Length (chunked upload): the cap must still hold while reading."""

    def chunks() -> Iterator[bytes]:
        yield b'{"id": "s", "text": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    headers = {**bearer(keys["moderate"]), "Content-Type": "application/json"}
    r = client.post("/v1/moderate", content=chunks(), headers=headers)
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.status_code == 413
    assert "more than 4096 bytes" in r.json()["error"]["message"]


def test_invalid_json_is_400_with_position(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/moderate", content=b'{"id": "a", "text": }', headers=bearer(keys["moderate"]))
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "bad_request"
    assert "not valid JSON" in err["message"] and "column 21" in err["message"]


def test_invalid_utf8_is_400(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/moderate", content=b'{"id": "a", "text": "\xff\xfe"}', headers=bearer(keys["moderate"]))
    assert r.status_code == 400
    assert "not valid UTF-8" in r.json()["error"]["message"]


def test_empty_body_is_400(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/moderate", content=b"", headers=bearer(keys["moderate"]))
    assert r.status_code == 400 and "empty" in r.json()["error"]["message"]


def test_bad_content_length_is_400(client: TestClient, keys: dict[str, str]) -> None:
    headers = {**bearer(keys["moderate"]), "Content-Length": "lots"}
    r = client.post("/v1/moderate", content=b'{"id": "a"}', headers=headers)
    assert r.status_code in (400,), r.text


def test_body_in_many_chunks_is_read_whole(client: TestClient, keys: dict[str, str]) -> None:
    """The fast path reads ASGI messages itself: every chunk counts, in order."""

    def chunks() -> Iterator[bytes]:
        yield b'{"id": "many", "surface": "comment", '
        yield b'"text": "win a free '
        yield b'iphone click here"}'

    headers = {**bearer(keys["moderate"]), "Content-Type": "application/json"}
    r = client.post("/v1/moderate", content=chunks(), headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["item_id"] == "many"
