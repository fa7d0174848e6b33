"""POST /v1/moderate, GET /v1/decisions/{id}, health checks."""

from __future__ import annotations

from fastapi.testclient import TestClient

from referee.serve import create_app
from referee.settings import Settings
from tests.serve.conftest import bearer


def test_single_item_answers_its_decision(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/moderate", json={"id": "c1", "text": "you are all #hate"}, headers=bearer(keys["moderate"]))
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["item_id"] == "c1"
    assert d["action"] == "remove"
    assert d["categories"] == ["hate"]
    assert d["decision_id"].startswith("dec_")


def test_clean_item_is_allowed(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/moderate", json={"id": "c2", "text": "lovely song"}, headers=bearer(keys["moderate"]))
    assert r.json()["action"] == "allow"


def test_batch_answers_aligned_decisions(client: TestClient, keys: dict[str, str]) -> None:
    items = [{"id": "a", "text": "#spam buy now"}, {"id": "b", "text": "nice"}, {"id": "c", "text": "#violence"}]
    r = client.post("/v1/moderate", json={"items": items}, headers=bearer(keys["moderate"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["errors"] == []
    assert [d["item_id"] for d in body["decisions"]] == ["a", "b", "c"]
    assert [d["action"] for d in body["decisions"]] == ["limit_reach", "allow", "remove"]


def test_batch_with_bad_items_still_moderates_the_good_ones(client: TestClient, keys: dict[str, str]) -> None:
    items = [
        {"id": "ok1", "text": "#hate"},
        {"id": "bad-surface", "text": "x", "surface": "Not A Name"},
        {"id": "ok2", "text": "fine"},
        "not an object",
        {"text": "no id"},
    ]
    r = client.post("/v1/moderate", json={"items": items}, headers=bearer(keys["moderate"]))
    assert r.status_code == 200, r.text
    body = r.json()
    decisions = body["decisions"]
    assert len(decisions) == 5
    assert decisions[0]["item_id"] == "ok1" and decisions[0]["action"] == "remove"
    assert decisions[2]["item_id"] == "ok2"
    assert decisions[1] is None and decisions[3] is None and decisions[4] is None
    by_index = {e["index"]: e for e in body["errors"]}
    assert set(by_index) == {1, 3, 4}
    assert by_index[1]["field"] == "items[1].surface"
    assert "lower_snake_case" in by_index[1]["message"]
    assert by_index[3]["field"] == "items[3]"
    assert by_index[4]["field"] == "items[4].id"


def test_batch_with_only_bad_items_is_422(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/moderate", json={"items": [{"text": "no id"}, 3]}, headers=bearer(keys["moderate"]))
    assert r.status_code == 422
    body = r.json()
    assert body["error"]["type"] == "invalid_input"
    assert body["error"]["field"] == "items"
    assert [e["field"] for e in body["errors"]] == ["items[0].id", "items[1]"]


def test_oversized_text_names_the_item_field(settings: Settings, engine, store, keys) -> None:
    from referee.model import MAX_TEXT_CHARS

    roomy = settings.model_copy(update={"max_body_bytes": MAX_TEXT_CHARS + 10_000})
    client = TestClient(create_app(roomy, engine=engine, store=store))
    items = [{"id": "ok", "text": "fine"}, {"id": "big", "text": "a" * (MAX_TEXT_CHARS + 1)}]
    r = client.post("/v1/moderate", json={"items": items}, headers=bearer(keys["moderate"]))
    assert r.status_code == 200, r.text
    assert r.json()["decisions"][0]["item_id"] == "ok"
    err = r.json()["errors"][0]
    assert err["index"] == 1 and err["field"] == "items[1].text"
    assert str(MAX_TEXT_CHARS) in err["message"]


def test_single_bad_item_is_422_naming_the_field(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/moderate", json={"id": "x", "text": "hi", "country": "Germany"}, headers=bearer(keys["moderate"]))
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "country"
    assert "two-letter" in r.json()["error"]["message"]


def test_batch_over_max_batch_is_413(client: TestClient, keys: dict[str, str]) -> None:
    items = [{"id": str(i), "text": "t"} for i in range(6)]  # max_batch is 5 in the fixture
    r = client.post("/v1/moderate", json={"items": items}, headers=bearer(keys["moderate"]))
    assert r.status_code == 413
    assert r.json()["error"]["field"] == "items"
    assert "limit of 5" in r.json()["error"]["message"]


def test_unknown_batch_field_is_named(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/moderate", json={"items": [{"id": "a"}], "itmes": []}, headers=bearer(keys["moderate"]))
    assert r.status_code == 422 and r.json()["error"]["field"] == "itmes"


def test_json_array_body_is_refused(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/moderate", json=[{"id": "a"}], headers=bearer(keys["moderate"]))
    assert r.status_code == 422
    assert "JSON object" in r.json()["error"]["message"]


def test_decision_fetch_roundtrips(client: TestClient, keys: dict[str, str]) -> None:
    made = client.post("/v1/moderate", json={"id": "f1", "text": "#harassment"}, headers=bearer(keys["moderate"]))
    decision_id = made.json()["decision_id"]
    r = client.get(f"/v1/decisions/{decision_id}", headers=bearer(keys["read"]))
    assert r.status_code == 200
    assert r.json() == made.json()


def test_remoderating_returns_the_stored_decision(client: TestClient, keys: dict[str, str]) -> None:
    first = client.post("/v1/moderate", json={"id": "i1", "text": "#spam"}, headers=bearer(keys["moderate"])).json()
    again = client.post("/v1/moderate", json={"id": "i1", "text": "#spam"}, headers=bearer(keys["moderate"])).json()
    assert again == first


def test_unknown_decision_is_404_with_a_message(client: TestClient, keys: dict[str, str]) -> None:
    r = client.get("/v1/decisions/dec_nope", headers=bearer(keys["read"]))
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["type"] == "not_found" and err["field"] == "decision_id"
    assert "dec_nope" in err["message"]


def test_unknown_route_uses_the_error_shape(client: TestClient) -> None:
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"


def test_detector_failure_is_a_decision_not_a_500(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/moderate", json={"id": "p", "text": "#boom"}, headers=bearer(keys["moderate"]))
    assert r.status_code == 200
    assert r.json()["failures"][0]["detector"] == "hashtag"


def test_healthz_needs_no_key(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_readyz_reports_engine_and_store(client: TestClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"]["store"] == "ok"
    assert "hashtag" in r.json()["checks"]["engine"]


def test_readyz_is_503_when_the_store_is_gone(client: TestClient, tmp_path) -> None:
    state = client.app.state.referee
    state.store.close()  # drops its connections; reopening finds a directory
    (tmp_path / "referee.db").unlink()
    (tmp_path / "referee.db").mkdir()  # a directory where the database file was: nothing can open it
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable"
    assert r.json()["checks"]["store"].startswith("unreachable")


def test_openapi_documents_the_bodies(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"ContentItem", "BatchRequest", "ModerationRequest", "Decision"} <= set(schema["components"]["schemas"])
    assert "/v1/moderations" in schema["paths"]
    assert client.get("/docs").status_code == 200


def test_engine_with_another_sink_is_refused(settings: Settings, store, engine) -> None:
    import pytest

    from referee.errors import ConfigError
    from referee.store import DecisionStore

    other = DecisionStore(settings.db_url.replace("referee.db", "other.db"))
    with pytest.raises(ConfigError, match="sink"):
        create_app(settings, engine=engine, store=other)
    other.close()


def test_middleware_added_later_applies_to_moderate(settings: Settings, engine, store, keys) -> None:
    # The hot path is an ordinary route now: a middleware the operator adds sees it.
    app = create_app(settings, engine=engine, store=store)
    seen: list[str] = []

    @app.middleware("http")
    async def tag(request, call_next):  # type: ignore[no-untyped-def]
        seen.append(request.url.path)
        response = await call_next(request)
        response.headers["x-tagged"] = "1"
        return response

    with TestClient(app, raise_server_exceptions=False) as client:
        ok = client.post("/v1/moderate", json={"id": "fp-1", "surface": "comment", "text": "hi #spam"},
                         headers=bearer(keys["moderate"]))
        assert ok.status_code == 200 and ok.json()["action"] != "allow" and ok.headers["x-tagged"] == "1"
        no_key = client.post("/v1/moderate", json={"id": "fp-2", "text": "hi"})
        assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "unauthorized"
        wrong_scope = client.post("/v1/moderate", json={"id": "fp-3", "text": "hi"}, headers=bearer(keys["read"]))
        assert wrong_scope.status_code == 403 and wrong_scope.json()["error"]["missing_scope"] == "moderate"
        bad = client.post("/v1/moderate", json={"id": "fp-4", "text": "hi", "country": "Germany"},
                          headers=bearer(keys["moderate"]))
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "country"
    assert seen.count("/v1/moderate") == 4


def test_router_without_the_fast_path_answers_the_same(settings: Settings, engine, store, keys) -> None:
    # Apps that mount referee's router themselves get the same endpoint from FastAPI.
    from fastapi import FastAPI

    from referee.serve import problems, routes
    from referee.serve.state import ServeState

    app = FastAPI()
    app.state.referee = ServeState(settings, engine, store)
    problems.install(app)
    app.include_router(routes.router)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v1/moderate", json={"id": "r-1", "text": "hello #hate"}, headers=bearer(keys["moderate"]))
        assert r.status_code == 200 and "hate" in r.json()["categories"]
        bad = c.post("/v1/moderate", json={"id": "r-2", "text": "hi", "country": "Germany"}, headers=bearer(keys["moderate"]))
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "country"


def test_startup_objects_are_frozen_out_of_the_collector(app) -> None:
    import gc

    with TestClient(app):
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_client_that_hangs_up_mid_body_is_not_a_server_error(app, keys: dict[str, str], caplog) -> None:
    import asyncio

    messages = [{"type": "http.request", "body": b'{"id": "x", "te', "more_body": True},
                {"type": "http.disconnect"}]
    sent: list[dict] = []

    async def receive():  # type: ignore[no-untyped-def]
        return messages.pop(0)

    async def send(message):  # type: ignore[no-untyped-def]
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/moderate", "raw_path": b"/v1/moderate",
             "query_string": b"", "headers": [(b"authorization", f"Bearer {keys['moderate']}".encode()),
                                               (b"content-type", b"application/json")],
             "app": app, "http_version": "1.1", "scheme": "http", "server": ("t", 80), "client": ("c", 1)}
    with TestClient(app):  # runs the lifespan, so the app state is live
        with caplog.at_level("ERROR"):
            asyncio.run(app(scope, receive, send))
    assert sent == []  # nobody left to answer
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_the_app_resumes_async_stages_a_previous_process_left_pending(settings: Settings, tmp_path) -> None:
    """The decision log is the durable queue: a head left pending is finished at start-up."""
    import time as _time

    from referee.engine import Engine
    from referee.model import ContentItem
    from referee.policy import Policy
    from referee.store import DecisionStore
    from tests.conftest import KeywordDetector
    from tests.engine.test_spine import PLAN_POLICY, FakeOCR, Second

    policy = Policy.from_yaml(PLAN_POLICY.replace("detectors: [second]", "detectors: [second]\n    async: true"))
    store = DecisionStore(f"sqlite:///{tmp_path}/p.db")

    class Broken(Second):
        def detect_many(self, items, prior=None):  # type: ignore[no-untyped-def,override]
            raise RuntimeError("model server down")

    first = Engine(policy, [FakeOCR(), KeywordDetector(), Broken()], sink=store)
    held = first.moderate(ContentItem(id="p1", text="vile"))
    first.close()
    assert store.log.head("p1") == held and held.pending_stages == ("second_look",)

    engine = Engine(policy, [FakeOCR(), KeywordDetector(), Second()], sink=store)
    with TestClient(create_app(settings, engine=engine, store=store)):
        for _ in range(100):
            head = store.log.head("p1")
            if head is not None and head.decision_id != held.decision_id:
                break
            _time.sleep(0.05)
    assert head.supersedes == held.decision_id and not head.provisional
    engine.close()


def test_held_decisions_reach_the_review_queue_and_the_chain_without_a_cron(settings: Settings, engine, store,
                                                                            keys) -> None:
    """The app follows the log: a held decision is queued for review, and new records are
    sealed into the audit chain, within a couple of ticks, with no `review sync` or `audit seal`."""
    import time as _time

    from referee.records.chain import AuditChain
    from referee.records.review import ReviewDesk

    fast = settings.model_copy(update={"follow_s": 0.1})
    with TestClient(create_app(fast, engine=engine, store=store)) as client:
        r = client.post("/v1/moderate", json={"id": "f1", "surface": "comment", "text": "look #self_harm"},
                        headers=bearer(keys["moderate"]))
        assert r.status_code == 200 and r.json()["action"] == "hold_for_review"
        desk, chain = ReviewDesk(store, engine.policy), AuditChain(store.db)
        for _ in range(100):
            queued = sum(s.open for s in desk.stats())
            if queued and chain.head()[0] >= store.log.last_seq():
                break
            _time.sleep(0.05)
    assert [t.decision_id for t in desk.tasks()] == [r.json()["decision_id"]]
    assert chain.head()[0] == store.log.last_seq() == 1 and chain.verify().ok


def test_http_clients_cannot_make_the_server_read_a_local_file(client, keys, tmp_path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n")
    item = {"id": "p1", "parts": [{"kind": "text", "id": "t", "text": "hi"},
                                  {"kind": "image", "id": "cover", "path": str(secret)}]}
    h = {"Authorization": f"Bearer {keys['moderate']}"}
    one = client.post("/v1/moderate", json=item, headers=h)
    assert one.status_code == 422 and one.json()["error"]["field"] == "parts[1].path", one.text
    batch = client.post("/v1/moderate", json={"items": [{"id": "ok", "text": "hi"}, item]}, headers=h).json()
    assert batch["decisions"][0] is not None and batch["decisions"][1] is None
    assert batch["errors"][0]["field"] == "items[1].parts[1].path"
