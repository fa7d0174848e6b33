"""The decision log's rules, the same for the in-memory, SQLite and PostgreSQL logs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy

from referee import ids
from referee.engine import Engine, decide
from referee.errors import StoreError
from referee.model import Action, ContentItem, Decision, Signal
from referee.store import Store
from referee.store.sql import log as sql_log
from tests.conftest import KeywordDetector


def _decide(policy, item: ContentItem, supersedes: Decision | None = None, score: float = 0.0) -> Decision:
    signals = [Signal(detector="keyword", detector_version="k1", category="hate", score=score)]
    return decide(policy, item, signals, (), {"keyword": "k1"},
                  supersedes=supersedes.decision_id if supersedes else None)


def _verdict(old: Decision, action: Action = Action.allow, who: str = "r1") -> Decision:
    return old.model_copy(update={
        "decision_id": ids.decision_id(old.input_key, old.decision_id, "review", salt=who),
        "action": action, "source": "review", "automated_decision": False, "reasons": (),
        "supersedes": old.decision_id,
    })


def test_append_returns_what_it_stored_and_a_stored_id_comes_back_as_stored(store, small_policy):
    item = ContentItem(id="r", text="buy")
    first = _decide(small_policy, item)
    later = first.model_copy(update={"created_at": first.created_at.replace(year=2030)})
    assert store.log.append([(item, first)]) == [first]
    assert store.log.append([(item, later)]) == [first]
    other = ContentItem(id="s", text="vile")
    second = _decide(small_policy, other)
    assert store.log.append([(item, later), (other, second), (other, second)]) == [first, second, second]
    assert [r.seq for r in store.log.history("r")] == [1]
    assert [r.seq for r in store.log.history("s")] == [2]
    assert store.log.get(first.decision_id) == first
    assert store.log.get_many([first.decision_id, "dec_nope"]) == {first.decision_id: first}
    assert store.log.get("dec_nope") is None


def test_the_chain_has_one_head_and_history_is_oldest_first(store, small_policy):
    item = ContentItem(id="a", text="vile vile")
    first = _decide(small_policy, item, score=0.6)
    store.log.append([(item, first)])
    review = store.supersede(first.decision_id, _verdict(first))
    assert review.supersedes == first.decision_id and review.source == "review"
    assert store.log.head("a") == review
    assert store.log.heads(["a", "unknown"]) == {"a": review}
    history = store.log.history("a")
    assert [(r.seq, r.decision.decision_id) for r in history] == [(1, first.decision_id), (2, review.decision_id)]
    assert all(r.recorded_at.tzinfo is not None for r in history)
    assert store.log.get(first.decision_id) == first  # untouched


def test_a_decision_is_superseded_at_most_once(store, small_policy):
    item = ContentItem(id="f", text="vile")
    first = _decide(small_policy, item, score=0.6)
    store.log.append([(item, first)])
    one = store.supersede(first.decision_id, _verdict(first, Action.allow, "r1"))
    two = store.supersede(first.decision_id, _verdict(first, Action.remove, "r2"))
    assert two == one  # the second reviewer gets the head, not a fork
    automated = _decide(small_policy, item, supersedes=first, score=0.9)
    assert store.log.append([(item, automated)]) == [one]  # nor does a late automated re-decision fork it
    assert len(store.log.history("f")) == 2


def test_an_item_has_one_root(store, small_policy):
    item = ContentItem(id="root", text="vile")
    first = _decide(small_policy, item)
    store.log.append([(item, first)])
    edited = ContentItem(id="root", text="vile vile")
    rival = _decide(small_policy, edited)  # a second root: it should have superseded the head
    assert store.log.append([(edited, rival)]) == [first]
    assert [r.decision for r in store.log.history("root")] == [first]
    follow = _decide(small_policy, edited, supersedes=first)
    assert store.log.append([(edited, follow)]) == [follow]
    assert store.log.head("root") == follow


def test_a_conflict_in_a_batch_keeps_the_rest_and_seq_has_no_gaps(store, small_policy):
    a, b, c = (ContentItem(id=i, text=f"text {i}") for i in "abc")
    da = _decide(small_policy, a)
    store.log.append([(a, da)])
    rival = _decide(small_policy, ContentItem(id="a", text="other"))
    db_, dc = _decide(small_policy, b), _decide(small_policy, c)
    out = store.log.append([(b, db_), (ContentItem(id="a", text="other"), rival), (c, dc)])
    assert out == [db_, da, dc]
    assert [r.seq for r in store.log.records()] == [1, 2, 3]
    assert [r.decision for r in store.log.records()] == [da, db_, dc]


def test_supersede_names_what_is_wrong(store, small_policy):
    item = ContentItem(id="x", text="vile")
    first = _decide(small_policy, item)
    store.log.append([(item, first)])
    with pytest.raises(StoreError, match="no decision 'dec_missing' to supersede"):
        store.supersede("dec_missing", _verdict(first))
    other = ContentItem(id="y", text="fine")
    foreign = _verdict(_decide(small_policy, other))
    with pytest.raises(StoreError, match="same item"):
        store.supersede(first.decision_id, foreign)
    orphan = _decide(small_policy, other).model_copy(update={"supersedes": "dec_missing", "decision_id": "dec_o"})
    with pytest.raises(StoreError, match="not in the log"):
        store.log.append([(other, orphan)])
    across = _decide(small_policy, other).model_copy(update={"supersedes": first.decision_id, "decision_id": "dec_a"})
    with pytest.raises(StoreError, match="about item 'x'"):
        store.log.append([(other, across)])
    assert store.log.history("y") == []


def test_records_page_through_in_seq_order(store, small_policy, monkeypatch):
    monkeypatch.setattr(sql_log, "PAGE", 3)
    items = [ContentItem(id=f"p{i}", text=f"t {i}") for i in range(8)]
    decided = [_decide(small_policy, item) for item in items]
    store.log.append(list(zip(items[:5], decided[:5])))
    store.log.append(list(zip(items[5:], decided[5:])))
    assert [r.seq for r in store.log.records()] == list(range(1, 9))
    assert [r.decision.item_id for r in store.log.records(after_seq=2, limit=4)] == ["p2", "p3", "p4", "p5"]
    assert [r.seq for r in store.log.records(after_seq=6)] == [7, 8]
    assert list(store.log.records(after_seq=8)) == []
    assert [d.item_id for d in store.iter_decisions()] == [f"p{i}" for i in range(8)]


def test_list_is_newest_first_and_filters(store, small_policy):
    base = datetime(2026, 5, 1, tzinfo=timezone.utc)
    for i, text in enumerate(["fine", "vile vile", "fine too"]):
        item = ContentItem(id=f"l{i}", text=text)
        d = _decide(small_policy, item, score=0.6 if "vile" in text else 0.0)
        d = d.model_copy(update={"created_at": base + timedelta(hours=i)})
        store.log.append([(item, d)])
    assert [d.item_id for d in store.log.list()] == ["l2", "l1", "l0"]
    assert [d.item_id for d in store.list_decisions(limit=1)] == ["l2"]
    assert [d.item_id for d in store.log.list(since=base + timedelta(minutes=30))] == ["l2", "l1"]
    assert [d.item_id for d in store.log.list(action="hold_for_review")] == ["l1"]
    # A time with another offset compares as the instant it is.
    cet = timezone(timedelta(hours=1))
    assert [d.item_id for d in store.log.list(since=(base + timedelta(hours=1, minutes=30)).astimezone(cet))] == ["l2"]


def test_the_engine_keeps_a_reviewers_verdict(store, small_policy):
    engine = Engine(small_policy, [KeywordDetector()], sink=store)
    first = engine.moderate(ContentItem(id="e", text="vile vile"))
    assert first.action is Action.hold_for_review
    verdict = store.supersede(first.decision_id, _verdict(first))
    assert engine.moderate(ContentItem(id="e", text="vile vile")) == verdict
    engine.close()


def test_heads_is_one_query_for_a_batch(sql_store, small_policy):
    items = [ContentItem(id=f"h{i}", text="vile" if i % 2 else "fine") for i in range(25)]
    firsts = [_decide(small_policy, item) for item in items]
    sql_store.log.append(list(zip(items, firsts)))
    seconds = [_decide(small_policy, item, supersedes=d, score=0.7) for item, d in zip(items[:10], firsts[:10])]
    sql_store.log.append(list(zip(items[:10], seconds)))
    seen: list[str] = []
    sqlalchemy.event.listen(sql_store.db.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    heads = sql_store.log.heads([item.id for item in items])
    assert len(seen) == 1
    assert [heads[item.id] for item in items] == seconds + firsts[10:]


def test_store_is_the_engines_sink_and_log_is_too(tmp_path, small_policy):
    store = Store(f"sqlite:///{tmp_path}/sink.db")
    for sink in (store, store.log):
        with Engine(small_policy, [KeywordDetector()], sink=sink) as engine:
            d = engine.moderate(ContentItem(id="k", text="buy"))
        assert store.log.head("k") == d
    assert len(store.history("k")) == 1
    store.close()


def test_pending_heads_are_the_heads_with_a_stage_still_pending(store, small_policy):
    from referee.model import StageRun

    pending = (StageRun(stage="detect", status="ran"), StageRun(stage="llm", status="pending"))
    items = [ContentItem(id=f"q{i}", text=f"text {i}") for i in range(4)]
    decided = [_decide(small_policy, item) for item in items]
    waiting = [d.model_copy(update={"stages": pending, "provisional": True}) for d in decided[:3]]
    store.log.append([(items[0], waiting[0]), (items[1], waiting[1]), (items[2], waiting[2]), (items[3], decided[3])])
    assert [d.item_id for d in store.log.pending_heads()] == ["q0", "q1", "q2"]
    done = _decide(small_policy, items[1], supersedes=waiting[1], score=0.2)
    store.log.append([(items[1], done)])  # the stage wrote its decision: q1 is no longer waiting
    assert [d.item_id for d in store.log.pending_heads()] == ["q0", "q2"]
    assert [d.item_id for d in store.pending_heads(limit=1)] == ["q0"]
