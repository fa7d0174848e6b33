"""Account actions: strikes reaching thresholds become append-only records, an appeal that takes a
strike back lowers or lifts them (a new record), the outbox reads in order, and the engine decides a
suspended author's items with the policy's item action (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from referee.engine import Engine
from referee.model import Action, ContentItem
from referee.policy import Policy
from referee.records.accounts import AccountBook
from referee.records.review import ReviewDesk, Verdict
from referee.store import Store, upgrade
from tests.conftest import SMALL_POLICY, KeywordDetector
from tests.store.conftest import pg_url  # noqa: F401

REVIEW = """
review:
  queues:
    general: {sla_hours: 48}
    appeals: {sla_hours: 72}
    senior: {sla_hours: 24}
  default_queue: general
  appeals_queue: appeals
  senior_queue: senior
  strikes:
    window_days: 30
    weights: {hate: 2}
    thresholds:
      - {points: 2, account_action: warn}
      - {points: 4, account_action: suspend_7d, duration_days: 7, item_action: hold_for_review}
"""
POLICY = SMALL_POLICY + REVIEW
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


class Now:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> datetime:
        return self.t


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/accounts.db"
    else:
        url = request.getfixturevalue("pg_url")
        upgrade(url)
    s = Store(url)
    yield s
    s.close()


@pytest.fixture
def policy() -> Policy:
    return Policy.from_yaml(POLICY)


def vile(n: int, author: str = "troll") -> ContentItem:
    return ContentItem(id=f"v-{author}-{n}", surface="comment", text=f"vile vile vile vile {n}", author_id=author)


def overturn(desk: ReviewDesk, decision_id: str) -> None:
    head = desk.store.log.get(decision_id)
    assert head is not None
    desk.enqueue(head, kind="appeal", queue="appeals")
    task = desk.claim("judge", "appeals")
    assert task is not None
    desk.submit(task.task_id, "judge", Verdict(kind="overturn"))


def test_strikes_impose_then_an_appeal_lowers_and_lifts_with_new_records(store: Store, policy: Policy) -> None:
    now = Now()
    book = AccountBook(store, policy, clock=now)
    engine = Engine(policy, [KeywordDetector()], sink=store.log, accounts=book)
    first = engine.moderate(vile(1))
    assert first.action is Action.remove and first.strike
    [warn] = book.sync()
    assert (warn.kind, warn.action, warn.points, warn.replaces) == ("impose", "warn", 2.0, None)
    assert warn.decision_ids == (first.decision_id,) and warn.trigger_decision_id == first.decision_id
    assert warn.expires_at is None and "2-point threshold of 'warn'" in warn.reason

    now.t += timedelta(minutes=1)
    second = engine.moderate(vile(2))
    [suspend] = book.sync()
    assert (suspend.kind, suspend.action, suspend.replaces) == ("impose", "suspend_7d", warn.action_id)
    assert suspend.expires_at == now.t + timedelta(days=7)
    assert book.sync() == []  # nothing new in the log: nothing recomputed

    desk = ReviewDesk(store, policy, clock=lambda: now.t.timestamp())
    now.t += timedelta(minutes=1)
    overturn(desk, second.decision_id)
    [lower] = book.sync()
    assert (lower.kind, lower.action, lower.replaces) == ("lower", "warn", suspend.action_id)
    assert lower.trigger_decision_id != second.decision_id and "took a strike back" in lower.reason
    now.t += timedelta(minutes=1)
    overturn(desk, first.decision_id)
    [lift] = book.sync()
    assert (lift.kind, lift.action, lift.points) == ("lift", None, 0.0)

    history = book.history("troll")
    assert [a.kind for a in history] == ["impose", "impose", "lower", "lift"]
    assert history[0] == warn  # the first record is as it was written
    assert [a.seq for a in book.outbox(after_seq=history[1].seq)] == [history[2].seq, history[3].seq]
    standing = book.standing("troll")
    assert standing.points == 0 and standing.in_force is None and len(standing.actions) == 4


def test_account_actions_refuse_update_and_delete(store: Store, policy: Policy) -> None:
    book = AccountBook(store, policy, clock=Now())
    Engine(policy, [KeywordDetector()], sink=store.log).moderate(vile(1))
    [record] = book.sync()
    for sql in ("UPDATE account_actions SET action = 'terminate'", "DELETE FROM account_actions"):
        with pytest.raises(DBAPIError, match="append-only"):
            with store.db.write() as conn:
                conn.execute(text(sql))
    assert book.history("troll") == [record]


def test_a_suspended_authors_items_get_the_item_action_until_it_is_lifted(store: Store, policy: Policy) -> None:
    now = Now()
    book = AccountBook(store, policy, clock=now)
    engine = Engine(policy, [KeywordDetector()], sink=store.log, accounts=book)
    engine.moderate_many([vile(1), vile(2)])
    [suspend] = book.sync()
    assert suspend.action == "suspend_7d"

    benign = ContentItem(id="ok-1", surface="comment", text="a lovely song", author_id="troll")
    other = ContentItem(id="ok-2", surface="comment", text="a lovely song", author_id="someone-else")
    held, free = engine.moderate_many([benign, other])
    assert free.action is Action.allow
    assert held.action is Action.hold_for_review
    [reason] = [r for r in held.reasons if r.kind == "account"]
    assert reason.rule_id == f"account:{suspend.action_id}" and "suspend_7d" in reason.message
    assert engine.moderate(benign).decision_id == held.decision_id  # idempotent while the suspension lasts

    now.t += timedelta(days=8)  # the suspension ran out: the item is decided again, as anyone's
    after = engine.moderate(benign)
    assert after.action is Action.allow and after.supersedes == held.decision_id
    assert not any(r.kind == "account" for r in after.reasons)
    assert book.restrictions(["troll"]) == {}


def test_no_strikes_section_means_no_account_actions(store: Store) -> None:
    policy = Policy.from_yaml(SMALL_POLICY)
    book = AccountBook(store, policy)
    Engine(policy, [KeywordDetector()], sink=store.log, accounts=book).moderate(vile(1))
    assert book.sync() == [] and book.restrictions(["troll"]) == {}
    assert book.standing("troll").points == 0
