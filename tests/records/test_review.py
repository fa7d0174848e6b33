"""Review queues: routing, priority ordering, SLA, leases, verdicts as superseding records,
no double assignment under concurrent reviewers (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from referee import ids
from referee.model import Action, ContentItem, Decision, Reason, Signal
from referee.policy import Policy
from referee.records.review import (
    ReviewDesk,
    ReviewError,
    Verdict,
    priority,
    reach_score,
    uncertainty_score,
)
from referee.store import Store, upgrade
from referee.store.sql.review_tables import review_state
from tests.store.conftest import pg_url  # noqa: F401  (re-exported to the other review test modules)

POLICY = """
id: small
version: "1"
categories:
  hate: {description: Attacks on protected groups., severity: high}
  spam: {description: Unsolicited commercial messages., severity: low}
  csam: {description: Sexual content involving minors., severity: critical}
surfaces:
  default:
    rules:
      - {id: default.any, categories: "*", threshold: 0.5, action: hold_for_review}
jurisdictions:
  EU:
    countries: [DE, FR]
review:
  queues:
    general: {sla_hours: 48}
    eu: {sla_hours: 24}
    urgent: {sla_hours: 4}
    appeals: {sla_hours: 72}
    senior: {sla_hours: 24}
  routes:
    - {queue: urgent, severities: [critical]}
    - {queue: eu, jurisdictions: [EU]}
  default_queue: general
  appeals_queue: appeals
  senior_queue: senior
"""


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_item(n: int | str, text: str = "words", country: str | None = None, **context: object) -> ContentItem:
    return ContentItem(id=f"it-{n}", text=f"{text} {n}", country=country, author_id="author-1", context=context)


def automated(it: ContentItem, category: str = "hate", score: float = 0.6,
              action: Action = Action.hold_for_review) -> Decision:
    key = ids.input_key(it.id, it.content_hash, it.country, "small", "1", "p" * 64, {"kw": "1"}, "")
    return Decision(
        decision_id=ids.decision_id(key, None), input_key=key, item_id=it.id, content_hash=it.content_hash,
        surface=it.surface, country=it.country, action=action, categories=(category,),
        reasons=(Reason(rule_id="default.any", kind="threshold", category=category, action=action,
                        threshold=0.5, message=f"{category} above 0.5"),),
        signals=(Signal(detector="kw", detector_version="1", category=category, score=score),),
        policy_id="small", policy_version="1", policy_sha256="p" * 64, review_required=action is Action.hold_for_review,
    )


def put(store: Store, it: ContentItem, d: Decision) -> Decision:
    return store.log.append([(it, d)])[0]


@pytest.fixture
def policy() -> Policy:
    return Policy.from_yaml(POLICY)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/review.db"
    u: str = request.getfixturevalue("pg_url")
    upgrade(u)
    return u


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    s = Store(url)
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def desk(store: Store, policy: Policy, clock: Clock) -> ReviewDesk:
    return ReviewDesk(store, policy, lease_s=600, clock=clock)


# -- the priority function --------------------------------------------------------
def test_priority_terms_are_as_documented(policy: Policy) -> None:
    assert reach_score(0) == 0 and reach_score(9_999_999) == pytest.approx(1.0)
    assert reach_score(9) == pytest.approx(1 / 7)
    assert uncertainty_score(0.5) == 1 and uncertainty_score(1.0) == 0 and uncertainty_score(0.75) == 0.5
    q = policy.document.review.queues["general"]  # type: ignore[union-attr]
    # high severity 0.75 + reach(999) 3/7 + uncertainty(0.6) 0.8 + half the SLA gone 0.5
    assert priority(q, "high", 999, 0.6, elapsed_s=24 * 3600) == pytest.approx(0.75 + 3 / 7 + 0.8 + 0.5)


def test_routing_by_severity_then_jurisdiction_then_default(desk: ReviewDesk) -> None:
    assert desk.route(automated(make_item(1), "csam")) == "urgent"
    assert desk.route(automated(make_item(2, country="DE"))) == "eu"
    assert desk.route(automated(make_item(3, country="US"))) == "general"


def test_claims_follow_priority_and_overdue_tasks_come_first(desk: ReviewDesk, store: Store, clock: Clock) -> None:
    # same queue (general): severity, reach and uncertainty decide
    low = put(store, make_item("low"), automated(make_item("low"), "spam", 0.95))           # 0.25 + 0 + 0.1
    far = put(store, make_item("far", followers=1_000_000), automated(make_item("far", followers=1_000_000), "spam", 0.95))
    unsure = put(store, make_item("unsure"), automated(make_item("unsure"), "hate", 0.5))  # 0.75 + 0 + 1
    for d in (low, far, unsure):
        desk.enqueue(d)
    clock.t += 3600
    late = put(store, make_item("late"), automated(make_item("late"), "spam", 0.95))
    desk.enqueue(late)  # queued an hour later: same terms as `low` but less time elapsed
    order = [t.item_id for t in desk.tasks("general")]
    assert order == ["it-unsure", "it-far", "it-low", "it-late"]
    # 47.5 h after the first three were queued, nothing is overdue yet
    clock.t += 46.5 * 3600
    old = put(store, make_item("fresh"), automated(make_item("fresh"), "hate", 0.5))
    desk.enqueue(old)
    assert [t.item_id for t in desk.tasks("general")][:1] == ["it-unsure"]
    clock.t += 0.6 * 3600  # past the 48 h deadline of the first three, not of `late`
    order = [t.item_id for t in desk.tasks("general")]
    assert order[:3] == ["it-unsure", "it-far", "it-low"] and order[3:] == ["it-fresh", "it-late"]
    stats = {s.queue: s for s in desk.stats()}
    assert stats["general"].open == 5 and stats["general"].overdue == 3
    claimed = [desk.claim("alice", "general") for _ in range(6)]
    assert [t.item_id if t else None for t in claimed] == order + [None]


def test_sync_weighs_reach_as_enqueue_does_reading_every_item_at_once(desk: ReviewDesk, store: Store) -> None:
    """The sync reads the items' context in one query (``ContentStore.contexts``); the
    priorities it gives are those ``enqueue`` gives item by item, erased content included."""
    made = {n: put(store, make_item(n, **ctx), automated(make_item(n, **ctx), "spam", 0.95))
            for n, ctx in (("far", {"followers": 1_000_000}), ("near", {"followers": 3}), ("none", {}),
                           ("text", {"followers": "many"}), ("gone", {"followers": 1_000_000}))}
    assert store.content.erase(made["gone"].content_hash)
    expected = {d.item_id: desk._task_row(d, desk._reach(d, desk.queue_config(desk.route(d))))["priority"]
                for d in made.values()}  # what enqueue computes, one content lookup per item
    synced = {t.item_id: t.priority for t in desk.sync()}
    assert synced == pytest.approx(expected)
    assert synced["it-far"] > synced["it-near"] > synced["it-none"] == synced["it-text"] == synced["it-gone"]
    keys = [(d.item_id, d.content_hash) for d in made.values()] + [("it-far", "0" * 64), ("nobody", "0" * 64)]
    found = store.content.contexts(keys)
    assert set(found) == {(made[n].item_id, made[n].content_hash) for n in ("far", "near", "none", "text")}
    assert found[("it-far", made["far"].content_hash)] == {"followers": 1_000_000}


def test_a_lease_expires_and_the_task_returns_to_the_queue(desk: ReviewDesk, store: Store, clock: Clock) -> None:
    d = put(store, make_item(1), automated(make_item(1)))
    desk.enqueue(d)
    task = desk.claim("alice", "general")
    assert task is not None and task.claimed_by == "alice"
    assert desk.claim("bob", "general") is None  # never shown to two reviewers at once
    clock.t += 599
    assert desk.claim("bob", "general") is None
    clock.t += 2  # alice abandoned it: the lease ran out
    again = desk.claim("bob", "general")
    assert again is not None and again.task_id == task.task_id and again.claimed_by == "bob"
    with pytest.raises(ReviewError, match="not held by 'alice'"):
        desk.submit(task.task_id, "alice", Verdict(kind="uphold"))


def test_renew_keeps_the_lease_and_release_gives_it_back(desk: ReviewDesk, store: Store, clock: Clock) -> None:
    desk.enqueue(put(store, make_item(1), automated(make_item(1))))
    task = desk.claim("alice", "general")
    assert task is not None
    clock.t += 500
    desk.renew(task.task_id, "alice")
    clock.t += 500
    assert desk.claim("bob", "general") is None
    desk.release(task.task_id, "alice")
    assert desk.claim("bob", "general") is not None


def test_a_verdict_is_a_superseding_record_with_reviewer_time_and_notes(desk: ReviewDesk, store: Store) -> None:
    it = make_item(1)
    held = put(store, it, automated(it, "hate", 0.6))
    desk.enqueue(held)
    task = desk.claim("alice", "general")
    assert task is not None
    record = desk.submit(task.task_id, "alice", Verdict(kind="uphold", seconds_spent=42.5, notes="slur, clear"))
    head = store.log.head(it.id)
    assert head is not None and head.decision_id == record.new_decision_id
    assert head.source == "review" and head.supersedes == held.decision_id and head.action is Action.remove
    assert not head.automated_decision and head.categories == ("hate",)
    assert [r.decision.decision_id for r in store.log.history(it.id)] == [held.decision_id, head.decision_id]
    (stored,) = desk.verdicts()
    assert (stored.reviewer_id, stored.seconds_spent, stored.notes, stored.verdict) == ("alice", 42.5, "slur, clear", "uphold")
    assert desk.task(task.task_id).status == "done"


def test_overturn_change_and_escalate(desk: ReviewDesk, store: Store) -> None:
    items = [make_item(n) for n in range(3)]
    for n, it in enumerate(items):
        desk.enqueue(put(store, it, automated(it, score=0.6 + n / 100)))  # claimed in this order
    verdicts = [Verdict(kind="overturn"), Verdict(kind="change", categories=("spam",), action=Action.limit_reach),
                Verdict(kind="escalate", notes="not sure, context needed")]
    for v in verdicts:
        task = desk.claim("alice", "general")
        assert task is not None
        desk.submit(task.task_id, "alice", v)
    heads = store.log.heads([it.id for it in items])
    assert heads[items[0].id].action is Action.allow and heads[items[0].id].categories == ()
    assert heads[items[1].id].action is Action.limit_reach and heads[items[1].id].categories == ("spam",)
    assert heads[items[2].id].source == "automated"  # escalation decides nothing yet
    (senior,) = desk.tasks("senior")
    assert senior.item_id == items[2].id and senior.kind == "senior"
    assert desk.claim("alice", "senior") is None  # the escalating reviewer does not judge it again
    task = desk.claim("sam", "senior")
    assert task is not None
    desk.submit(task.task_id, "sam", Verdict(kind="uphold"))
    assert store.log.head(items[2].id).source == "review"  # type: ignore[union-attr]


def test_a_change_verdict_names_known_categories(desk: ReviewDesk, store: Store) -> None:
    desk.enqueue(put(store, make_item(1), automated(make_item(1))))
    task = desk.claim("alice", "general")
    assert task is not None
    with pytest.raises(ReviewError, match="not in the policy"):
        desk.submit(task.task_id, "alice", Verdict(kind="change", categories=("nonsense",)))


def test_double_review_goes_to_two_people_and_disagreement_to_senior(desk: ReviewDesk, store: Store) -> None:
    it = make_item(1)
    d = put(store, it, automated(it, action=Action.remove))
    desk.enqueue(d, kind="review", slot=0)
    desk.enqueue(d, kind="qa", slot=1)
    first = desk.claim("alice", "general")
    assert first is not None
    assert desk.claim("alice", "general") is None  # not the second copy of the same decision
    second = desk.claim("bob", "general")
    assert second is not None and second.decision_id == first.decision_id and second.kind == "qa"
    desk.submit(first.task_id, "alice", Verdict(kind="uphold"))
    desk.submit(second.task_id, "bob", Verdict(kind="overturn"))  # QA label only: the head stays alice's
    assert store.log.head(it.id).source == "review"  # type: ignore[union-attr]
    assert [t.kind for t in desk.tasks("senior")] == ["senior"]


def test_sync_queues_held_heads_once(desk: ReviewDesk, store: Store) -> None:
    a, b, c = make_item("a"), make_item("b", country="FR"), make_item("c")
    put(store, a, automated(a))
    put(store, b, automated(b))
    put(store, c, automated(c, action=Action.allow))
    made = desk.sync()
    assert sorted((t.item_id, t.queue) for t in made) == [("it-a", "general"), ("it-b", "eu")]
    assert desk.sync() == []
    d = make_item("d")
    put(store, d, automated(d))
    assert [t.item_id for t in desk.sync()] == ["it-d"]


def test_a_verdict_after_someone_else_decided_is_a_conflict(desk: ReviewDesk, store: Store) -> None:
    it = make_item(1)
    d = put(store, it, automated(it))
    desk.enqueue(d, slot=0)
    desk.enqueue(d, kind="senior", queue="senior", slot=0)
    t1 = desk.claim("alice", "general")
    t2 = desk.claim("sam", "senior")
    assert t1 and t2
    desk.submit(t2.task_id, "sam", Verdict(kind="overturn"))
    from referee.records.review import ReviewConflict
    with pytest.raises(ReviewConflict):
        desk.submit(t1.task_id, "alice", Verdict(kind="uphold"))
    assert desk.task(t1.task_id).status == "stale"


# -- concurrency ---------------------------------------------------------------------
def test_no_double_assignment_under_concurrent_reviewers(url: str, policy: Policy) -> None:
    """Eight reviewers on two stores of one database (as two server processes) drain a queue:
    every task is handed out exactly once."""
    stores = [Store(url), Store(url)]
    try:
        setup = ReviewDesk(stores[0], policy)
        n = 60
        for i in range(n):
            it = make_item(i)
            setup.enqueue(put(stores[0], it, automated(it, score=0.5 + i / 200)))
        got: dict[str, list[str]] = {}
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def reviewer(k: int) -> None:
            desk = ReviewDesk(stores[k % 2], policy, lease_s=3600)
            mine = got.setdefault(f"r{k}", [])
            barrier.wait()
            try:
                while (task := desk.claim(f"r{k}", "general")) is not None:
                    mine.append(task.task_id)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=reviewer, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        claimed = [t for ts in got.values() for t in ts]
        assert len(claimed) == n and len(set(claimed)) == n
        assert sum(1 for ts in got.values() if ts) >= 2  # they really did race
    finally:
        for s in stores:
            s.close()


# -- the policy's review: section --------------------------------------------------------
def test_lint_names_unknown_categories_jurisdictions_and_queues_in_review() -> None:
    from referee.errors import PolicyError
    bad = POLICY.replace("jurisdictions: [EU]}", "jurisdictions: [EUR]}").replace(
        "severities: [critical]}", "severities: [critical], categories: [hat]}")
    with pytest.raises(PolicyError) as err:
        Policy.from_yaml(bad)
    text = str(err.value)
    assert "review route for unknown category 'hat'" in text and "did you mean 'hate'" in text
    assert "review route for unknown jurisdiction 'EUR'" in text
    with pytest.raises(PolicyError, match="unknown queue 'seniors'"):
        Policy.from_yaml(POLICY.replace("senior_queue: senior", "senior_queue: seniors"))


def test_an_overturn_takes_the_strike_back(desk: ReviewDesk, store: Store) -> None:
    it = make_item(1)
    d = put(store, it, automated(it, action=Action.remove).model_copy(update={"strike": True}))
    desk.enqueue(d)
    task = desk.claim("alice", "general")
    assert task is not None
    desk.submit(task.task_id, "alice", Verdict(kind="overturn"))
    head = store.log.head(it.id)
    assert head is not None and head.action is Action.allow and not head.strike


def test_a_share_of_automated_decisions_and_of_verdicts_is_double_reviewed(store: Store, clock: Clock) -> None:
    policy = Policy.from_yaml(POLICY.replace("senior_queue: senior", "senior_queue: senior\n  qa_sample_rate: 1.0"))
    desk = ReviewDesk(store, policy, clock=clock)
    a, b = make_item("a"), make_item("b")
    put(store, a, automated(a, action=Action.allow))
    held = put(store, b, automated(b))
    assert sorted((t.item_id, t.kind) for t in desk.sync()) == [("it-a", "qa"), ("it-b", "review")]
    task = desk.claim("alice", "general")
    assert task is not None and task.item_id == "it-b"
    desk.submit(task.task_id, "alice", Verdict(kind="uphold"))
    again = [t for t in desk.tasks("general") if t.item_id == "it-b"]
    assert [(t.kind, t.decision_id) for t in again] == [("qa", held.decision_id)]  # alice's verdict, checked
    assert desk.claim("alice", "general").item_id == "it-a"  # type: ignore[union-attr]  # not her own verdict
    assert desk.claim("bob", "general").item_id == "it-b"  # type: ignore[union-attr]


def test_sync_in_pages_queues_what_the_heads_ask_for_and_parses_only_those(
        store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paged sync, deciding on the log's columns: a held head is queued for review, a sampled
    head for QA, a held decision that something superseded (in the same page or a later
    one) is not; only the decisions that get a task are read whole."""
    policy = Policy.from_yaml(POLICY.replace("senior_queue: senior", "senior_queue: senior\n  qa_sample_rate: 0.5"))
    desk = ReviewDesk(store, policy, clock=clock)
    for n in range(12):
        it = make_item(n)
        d = put(store, it, automated(it, action=Action.hold_for_review if n % 3 else Action.allow))
        if n % 4 == 1:  # a reviewer already decided it: the held decision is no head any more
            store.log.supersede(d.decision_id, d.model_copy(update={
                "decision_id": f"rev-{n}", "source": "review", "action": Action.allow, "review_required": False}))
    heads = store.log.heads([f"it-{n}" for n in range(12)])
    expected = sorted(
        (h.item_id, "review" if desk.wants_review(h) else "qa") for h in heads.values()
        if desk.wants_review(h) or desk.sampled_for_qa(h))
    assert any(kind == "qa" for _, kind in expected) and any(kind == "review" for _, kind in expected)
    read: list[str] = []
    get_many = store.log.get_many
    monkeypatch.setattr(store.log, "get_many", lambda ids_: read.extend(ids_) or get_many(ids_))

    desk.sync(limit=5, page=2)  # limit: the records read, in pages of two
    with store.db.read() as conn:
        assert conn.execute(select(review_state.c.last_seq)).scalar() == 5
    made = desk.sync(page=2)
    everything = sorted((t.item_id, t.kind) for t in desk.tasks())
    assert everything == expected
    assert sorted(read) == sorted(t.decision_id for t in desk.tasks())
    assert made and desk.sync(page=2) == []
