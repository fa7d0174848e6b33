"""Appeals: routed to a different reviewer than the original, upheld or overturned, the
overturn restores the content and records the reversal."""

from __future__ import annotations

import pytest

from referee.model import Action
from referee.records.appeals import file_appeal, get_appeal, list_appeals
from referee.records.review import ReviewDesk, ReviewError, Verdict
from referee.store import Store
from tests.records import test_review as base
from tests.records.test_review import automated, make_item, put

# the fixtures of test_review: a desk on SQLite and on PostgreSQL
clock, desk, pg_url, policy, store, url = base.clock, base.desk, base.pg_url, base.policy, base.store, base.url


def reviewed_by(desk: ReviewDesk, store: Store, reviewer: str, n: int = 1):
    it = make_item(n)
    desk.enqueue(put(store, it, automated(it)))
    task = desk.claim(reviewer, "general")
    assert task is not None
    record = desk.submit(task.task_id, reviewer, Verdict(kind="uphold"))
    return it, store.log.get(record.new_decision_id)  # type: ignore[arg-type]


def test_an_appeal_goes_to_a_different_reviewer_than_the_original(desk: ReviewDesk, store: Store) -> None:
    it, removed = reviewed_by(desk, store, "alice")
    assert removed.action is Action.remove
    appeal = file_appeal(desk, removed.decision_id, "It was a quote from a news article.")
    assert appeal.original_reviewer == "alice" and appeal.status == "open"
    assert desk.claim("alice", "appeals") is None  # the original reviewer never gets it
    task = desk.claim("bob", "appeals")
    assert task is not None and task.kind == "appeal" and task.appeal_id == appeal.appeal_id
    assert file_appeal(desk, removed.decision_id, "again").appeal_id == appeal.appeal_id  # one open appeal


def test_an_overturned_appeal_restores_the_content_and_records_the_reversal(desk: ReviewDesk, store: Store) -> None:
    it, removed = reviewed_by(desk, store, "alice")
    appeal = file_appeal(desk, removed.decision_id, "Counter-speech, not hate.")
    task = desk.claim("bob", "appeals")
    assert task is not None
    with pytest.raises(ReviewError, match="upheld or overturned"):
        desk.submit(task.task_id, "bob", Verdict(kind="escalate"))
    desk.submit(task.task_id, "bob", Verdict(kind="overturn", notes="counter-speech"))
    head = store.log.head(it.id)
    assert head is not None and head.source == "appeal" and head.action is Action.allow and head.categories == ()
    assert head.supersedes == removed.decision_id
    done = get_appeal(desk, appeal.appeal_id)
    assert (done.status, done.reversed_action, done.decided_by, done.outcome_decision_id) == (
        "overturned", "remove", "bob", head.decision_id)
    assert [r.decision.source for r in store.log.history(it.id)] == ["automated", "review", "appeal"]


def test_an_upheld_appeal_keeps_the_action_and_is_recorded(desk: ReviewDesk, store: Store) -> None:
    it, removed = reviewed_by(desk, store, "alice")
    appeal = file_appeal(desk, removed.decision_id, "unfair")
    task = desk.claim("carol", "appeals")
    assert task is not None
    desk.submit(task.task_id, "carol", Verdict(kind="uphold"))
    head = store.log.head(it.id)
    assert head is not None and head.source == "appeal" and head.action is Action.remove
    assert get_appeal(desk, appeal.appeal_id).status == "upheld"
    assert [a.status for a in list_appeals(desk)] == ["upheld"]


def test_an_appeal_of_an_automated_decision_and_of_an_unknown_one(desk: ReviewDesk, store: Store) -> None:
    it = make_item(9)
    d = put(store, it, automated(it, action=Action.remove))
    appeal = file_appeal(desk, d.decision_id, "my own song lyrics")
    assert appeal.original_reviewer is None
    assert desk.claim("alice", "appeals") is not None
    with pytest.raises(ReviewError, match="unknown decision 'nope'"):
        file_appeal(desk, "nope", "why")
    with pytest.raises(ReviewError, match="needs the user's reason"):
        file_appeal(desk, d.decision_id, "  ")
