"""Notices (DSA Art. 16): stored with a receipt, routed to review with trusted flaggers first, the
verdict settled onto the notice and offered to the notifier; notice-based and account-action
statements of reasons; the transparency report's notice table; the enum fixes (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from referee.engine import Engine
from referee.errors import ConfigError
from referee.model import Action, ContentItem
from referee.policy import Policy
from referee.records.accounts import AccountBook
from referee.records.notices import (
    NoticeError,
    file_notice,
    get_notice,
    mark_communicated,
    outcomes,
    route_pending,
    settle,
)
from referee.records.reasons import EU, Statements, StatementValidator
from referee.records.review import ReviewDesk, Verdict
from referee.records.transparency import TransparencyReport
from referee.serve import accounts as accounts_api
from referee.serve import create_app
from referee.serve import notices as notices_api
from referee.settings import Settings
from referee.store import Store, upgrade
from tests.serve.conftest import DEFAULT_POLICY, HashtagDetector, bearer
from tests.store.conftest import pg_url  # noqa: F401


class Clock:
    def __init__(self) -> None:
        self.t = datetime.now(timezone.utc).timestamp()

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/notices.db"
    u: str = request.getfixturevalue("pg_url")
    upgrade(u)
    return u


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    s = Store(url)
    yield s
    s.close()


@pytest.fixture
def policy() -> Policy:
    return Policy.from_file(DEFAULT_POLICY)


@pytest.fixture
def engine(store: Store, policy: Policy) -> Iterator[Engine]:
    with Engine(policy, [HashtagDetector()], sink=store.log) as e:
        yield e


def post(n: int | str, text: str = "a nice song", author: str = "a-1") -> ContentItem:
    return ContentItem(id=f"p-{n}", surface="comment", text=text, author_id=author, country="DE", language="en")


def test_notices_are_routed_trusted_flaggers_first_and_settled_from_the_verdict(
        store: Store, policy: Policy, engine: Engine) -> None:
    clock = Clock()
    desk = ReviewDesk(store, policy, clock=clock)
    threat = post("held", "#boom")  # the detector fails: on_error holds it
    held, quiet, flagged = engine.moderate_many([threat, post("quiet"), post("tf")])
    assert held.action is Action.hold_for_review and quiet.action is Action.allow
    desk.sync()  # the held decision is queued as automation left it
    ordinary = file_notice(desk, "It insults my neighbour.", item_id="p-quiet", category="harassment",
                           notifier_contact='{"email": "n@example.org"}')
    trusted = file_notice(desk, "Illegal hate speech under national law.", item_id="p-tf", trusted_flagger=True)
    assert ordinary.status == "open" and trusted.status == "open" and trusted.trusted_flagger
    assert get_notice(desk, ordinary.notice_id).task_id == ordinary.task_id

    queue = desk.route(held)
    order = [t.item_id for t in desk.tasks(queue)]
    assert order.index("p-tf") < order.index("p-quiet") < order.index("p-held")
    first = desk.claim("rev-1", queue)
    assert first is not None and first.item_id == "p-tf"

    # a second notice on the same item joins its task (no second task), and raises it no further
    again = file_notice(desk, "Me too.", item_id="p-tf")
    assert again.task_id == trusted.task_id

    clock.t += 3600
    desk.submit(first.task_id, "rev-1", Verdict(kind="change", action=Action.remove, categories=("hate",)))
    assert {n.notice_id for n in settle(desk)} == {trusted.notice_id, again.notice_id}
    assert settle(desk) == []
    decided = get_notice(desk, trusted.notice_id)
    assert (decided.status, decided.outcome, decided.outcome_action) == ("decided", "change", "remove")
    assert decided.decided_at == pytest.approx(clock.t)
    head = store.log.head("p-tf")
    assert head is not None and decided.outcome_decision_id == head.decision_id
    told = outcomes(desk)
    assert {n.notice_id for n in told} == {trusted.notice_id, again.notice_id}
    assert mark_communicated(desk, [trusted.notice_id]) == 1
    assert {n.notice_id for n in outcomes(desk)} == {again.notice_id}


def test_a_notice_about_an_unknown_item_waits_unrouted_and_bad_notices_name_the_field(
        store: Store, policy: Policy, engine: Engine) -> None:
    desk = ReviewDesk(store, policy)
    early = file_notice(desk, "Scam shop.", item_id="p-later")
    by_url = file_notice(desk, "Scam shop.", url="https://example.org/p/9")
    assert early.status == "unrouted" and early.task_id is None and by_url.status == "unrouted"
    assert route_pending(desk) == []
    engine.moderate(post("later"))
    [routed] = route_pending(desk)
    assert routed.notice_id == early.notice_id and routed.status == "open"
    engine.moderate(post("9"))
    [named] = route_pending(desk, item_id="p-9", notice_id=by_url.notice_id)
    assert named.item_id == "p-9" and named.status == "open"
    for kwargs, field in [({"explanation": " "}, "explanation"), ({"explanation": "x"}, "item_id"),
                          ({"explanation": "x", "url": "ftp://x"}, "url"),
                          ({"explanation": "x", "item_id": "p-1", "category": "hates"}, "category")]:
        with pytest.raises(NoticeError) as err:
            file_notice(desk, **kwargs)  # type: ignore[arg-type]
        assert err.value.field == field


def test_statements_for_notice_decisions_and_account_actions(store: Store, policy: Policy, engine: Engine) -> None:
    clock = Clock()
    desk = ReviewDesk(store, policy, clock=clock)
    engine.moderate_many([post("n1"), post("n2")])
    n1 = file_notice(desk, "Hate.", item_id="p-n1", trusted_flagger=True)
    n2 = file_notice(desk, "Something is wrong.", item_id="p-n2")  # no category alleged
    for _ in range(2):
        task = desk.claim("rev", "eu_notices")
        assert task is not None
        categories = ("hate",) if task.item_id == "p-n1" else None
        desk.submit(task.task_id, "rev", Verdict(kind="change", action=Action.remove, categories=categories))
    settle(desk)
    assert get_notice(desk, n1.notice_id).status == get_notice(desk, n2.notice_id).status == "decided"

    # strikes: enough hate removals to reach the default policy's suspend_7d (6 points at 2 each)
    engine.moderate_many([post(f"h{i}", "#hate #hate", author="troll") for i in range(3)])
    book = AccountBook(store, policy)
    made = book.sync()
    assert [a.action for a in made] == ["suspend_7d"]  # warn (3) and suspend (6) are reached by one sync

    found = list(Statements(store.db, store.log, policy).iter())
    errors = [s for s in found if not hasattr(s, "body")]
    assert errors == []
    by_item = {s.body["puid"]: s.body for s in found}  # type: ignore[union-attr]
    notice_bodies = [b for b in by_item.values() if b["source_type"] != "SOURCE_VOLUNTARY"]
    assert sorted(b["source_type"] for b in notice_bodies) == ["SOURCE_ARTICLE_16", "SOURCE_TRUSTED_FLAGGER"]
    unspecified = next(b for b in notice_bodies if b["source_type"] == "SOURCE_ARTICLE_16")
    assert unspecified["category"] == "STATEMENT_CATEGORY_NOT_SPECIFIED_NOTICE"
    assert "Article 16" in unspecified["decision_facts"]
    account = by_item[f"referee-{made[0].action_id}"]
    assert account["decision_account"] == "DECISION_ACCOUNT_SUSPENDED"
    assert account["end_date_account_restriction"] == made[0].expires_at.date().isoformat()  # type: ignore[union-attr]
    assert account["category"] == "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH"
    assert account["automated_decision"] == "AUTOMATED_DECISION_FULLY" and "troll" not in json.dumps(account)

    report = TransparencyReport(store.db, store.log, policy).build(str(datetime.now(timezone.utc).year))
    rows = {(r[0], r[1]): r[2:] for r in report.table("notices").rows}
    assert rows[("trusted_flagger", "(all)")] == [1, 1, 1, rows[("trusted_flagger", "(all)")][3]]
    assert rows[("article_16", "(not specified)")][:3] == [1, 1, 1]
    assert rows[("(all)", "(all)")][:3] == [2, 2, 2]
    assert ["impose", "suspend_7d", 1] in report.table("account_actions").rows


def test_the_enum_fixes_hold_against_the_api_documentation() -> None:
    v = StatementValidator()
    assert "HU" in EU and len(EU) == 27
    body = {"decision_visibility": ["DECISION_VISIBILITY_CONTENT_REMOVED"],
            "decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT", "incompatible_content_ground": "T 1",
            "incompatible_content_explanation": "x", "content_type": ["CONTENT_TYPE_TEXT"],
            "category": "STATEMENT_CATEGORY_OTHER_VIOLATION_TC", "category_specification": ["KEYWORD_OTHER"],
            "territorial_scope": ["HU"], "content_date": "2026-01-01", "application_date": "2026-01-02",
            "decision_facts": "x", "source_type": "SOURCE_TRUSTED_FLAGGER", "automated_detection": "No",
            "automated_decision": "AUTOMATED_DECISION_NOT_AUTOMATED", "puid": "p-1"}
    assert v.errors(body) == []
    wrong = {**body, "category_specification": ["KEYWORD_OTHER_SPAM"]}
    assert v.full_errors(wrong) == [("category_specification.0", "'KEYWORD_OTHER_SPAM' is not an allowed value")]


# -- HTTP -------------------------------------------------------------------------------
@pytest.fixture
def client(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Store, dict[str, str]]]:
    import referee.store.apikeys as apikeys

    if "trusted_flagger" not in apikeys.SCOPES:  # until store/apikeys.py lists it (docs/compliance.md)
        monkeypatch.setattr(apikeys, "SCOPES", (*apikeys.SCOPES, "trusted_flagger"))
    settings = Settings(_env_file=None, policy=DEFAULT_POLICY, db_url=f"sqlite:///{tmp_path / 'api.db'}")
    store = Store(settings.db_url)
    engine = Engine(Policy.from_file(DEFAULT_POLICY), [HashtagDetector()], sink=store)
    app = create_app(settings, engine=engine, store=store)
    app.include_router(notices_api.router)
    app.include_router(accounts_api.router)
    keys = {"moderate": store.create_key("platform", ["moderate"]), "read": store.create_key("r", ["read"]),
            "tf": store.create_key("flagger-org", ["trusted_flagger"]),
            "other": store.create_key("other", ["moderate"])}
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, store, keys
    engine.close()
    store.close()


def test_http_notice_receipt_outcome_and_accounts(client: tuple[TestClient, Store, dict[str, str]]) -> None:
    c, store, keys = client
    r = c.post("/v1/moderate", json={"id": "web-1", "surface": "comment", "text": "#hate #hate", "author_id": "u9",
                                     "country": "DE"}, headers=bearer(keys["moderate"]))
    assert r.status_code == 200
    r = c.post("/v1/notices", json={"item_id": "web-1", "explanation": "Hate speech.", "category": "hate"},
               headers=bearer(keys["tf"]))
    assert r.status_code == 201, r.text
    receipt = r.json()
    assert receipt["trusted_flagger"] is True and receipt["status"] == "open" and receipt["notice_id"].startswith("ntc_")
    r = c.post("/v1/notices", json={"url": "https://example.org/x", "explanation": "Bad."},
               headers=bearer(keys["moderate"]))
    assert r.status_code == 201 and r.json()["trusted_flagger"] is False and r.json()["status"] == "unrouted"
    bad = c.post("/v1/notices", json={"explanation": "no target"}, headers=bearer(keys["moderate"]))
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "item_id"
    assert c.post("/v1/notices", json={"item_id": "x", "explanation": "y"},
                  headers=bearer(keys["read"])).status_code == 403

    nid = receipt["notice_id"]
    mine = c.get(f"/v1/notices/{nid}", headers=bearer(keys["tf"]))
    assert mine.status_code == 200 and mine.json()["outcome"] is None
    assert c.get(f"/v1/notices/{nid}", headers=bearer(keys["other"])).status_code == 404
    assert c.get(f"/v1/notices/{nid}", headers=bearer(keys["read"])).status_code == 200

    account = c.get("/v1/accounts/u9", headers=bearer(keys["read"]))
    assert account.status_code == 200
    body = account.json()
    assert body["points"] == 2 and body["in_force"] is None and body["reached"] is None  # warn is at 3
    for n in (2, 3):
        c.post("/v1/moderate", json={"id": f"web-{n}", "surface": "comment", "text": "#hate", "author_id": "u9",
                                     "country": "DE"}, headers=bearer(keys["moderate"]))
    body = c.get("/v1/accounts/u9", headers=bearer(keys["read"])).json()
    assert body["in_force"]["action"] == "suspend_7d" and len(body["strikes"]) == 3
    outbox = c.get("/v1/account-actions", params={"after": 0}, headers=bearer(keys["read"])).json()
    assert [a["action"] for a in outbox["actions"]] == ["suspend_7d"] and outbox["next_after"] == 1
    assert c.get("/v1/account-actions", params={"after": 1}, headers=bearer(keys["read"])).json()["actions"] == []
    assert datetime.fromisoformat(body["in_force"]["expires_at"]) - datetime.fromisoformat(
        body["in_force"]["created_at"]) == timedelta(days=7)


def test_an_account_action_whose_statement_cannot_be_built_or_validated_is_listed_not_sent(
        store: Store, policy: Policy, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.moderate_many([post(f"h{i}", "#hate #hate", author="troll") for i in range(3)])
    (made,) = AccountBook(store, policy).sync()
    statements = Statements(store.db, store.log, policy)
    puid = f"referee-{made.action_id}"

    def unmapped(*_: object) -> None:
        raise ConfigError("no category mapping")

    monkeypatch.setattr(statements.builder, "build_account", unmapped)
    errors = [s for s in statements.iter() if getattr(s, "puid", None) == puid]
    assert [(e.decision_id, e.field, e.reason) for e in errors] == [  # type: ignore[union-attr]
        (made.action_id, "category", "no category mapping")]
    monkeypatch.undo()
    statements = Statements(store.db, store.log, policy)
    real = statements.validator.errors
    monkeypatch.setattr(statements.validator, "errors",
                        lambda body: [("a", "one"), ("b", "two")] if body.get("puid") == puid else real(body))
    found = list(statements.iter())
    assert [(s.decision_id, s.field, s.reason) for s in found  # type: ignore[union-attr]
            if getattr(s, "puid", None) == puid] == [(made.action_id, "a", "one"), (made.action_id, "b", "two")]
    assert all(hasattr(s, "body") for s in found if getattr(s, "puid", None) != puid)  # the others still go
