"""Human review: routed, prioritised queues with SLA timers, leased claims, verdicts as records.

A **task** is one piece of review work about one decision: ``review`` (a held
item), ``qa`` (a double review of an automated decision or of a verdict),
``senior`` (an escalation or a QA disagreement) or ``appeal``. Tasks live in
the store's ``review_tasks`` table; verdicts that change the item's state are
new decisions in the log that supersede the item's head.

**Routing** (policy ``review.routes``): the first route whose every given
condition holds (category, surface, jurisdiction, severity) names the queue;
otherwise ``review.default_queue``.

**Priority** of a task at time ``now``, per queue weights (``ws, wr, wu, wd``)::

    priority(now) = ws * severity + wr * reach + wu * uncertainty + wd * elapsed(now)

- ``severity``: the category's severity, low 0.25, medium 0.5, high 0.75, critical 1;
- ``reach``: ``min(1, log10(1 + n) / 7)`` of the item context field ``reach_field``
  (followers, plays: 10 M is 1);
- ``uncertainty``: ``1 - 2 * |score - 0.5|`` of the highest score in the flagged category
  (1 at 0.5, 0 at 0 or 1);
- ``elapsed(now)``: ``(now - enqueued_at) / sla``, 0 when queued, 1 at the deadline.

Overdue tasks (``now > due_at``) come before every task still in time. Since
``wd / sla`` is one number per queue, ordering by ``priority(now)`` is
ordering by ``rank = priority(enqueued_at)`` minus ``wd * enqueued_at / sla``,
which is stored: one ``ORDER BY`` on both dialects, no clock in SQL.

**Claims**: ``claim(reviewer, queue)`` hands out the first open task, or one
whose lease expired, that the reviewer may take: never one excluded for them
(an appeal's original reviewer), never a decision they already gave a verdict
on or hold another task of (so double review reaches two different people).
On SQLite the claim runs under the store's one-writer lock; on PostgreSQL it
selects ``FOR UPDATE SKIP LOCKED``, so concurrent reviewers never get one task.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import Field
from sqlalchemy import Select, bindparam, case, exists, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from referee import ids
from referee.errors import RefereeError
from referee.model import Action, Decision
from referee.model.base import Frozen
from referee.policy import Policy
from referee.policy.schema import Review, ReviewQueue
from referee.store.sql.review_tables import appeals, review_state, review_tasks, review_verdicts
from referee.store.sql.store import Store
from referee.store.sql.tables import decisions

__all__ = [
    "DEFAULT_REVIEW",
    "SEVERITY_SCORE",
    "QueueStats",
    "ReviewConflict",
    "ReviewDesk",
    "ReviewError",
    "Task",
    "TaskKind",
    "Verdict",
    "VerdictRecord",
    "priority",
    "reach_score",
    "uncertainty_score",
]

TaskKind = Literal["review", "qa", "senior", "appeal"]
VerdictKind = Literal["uphold", "overturn", "change", "escalate"]

SEVERITY_SCORE = {"low": 0.25, "medium": 0.5, "high": 0.75, "critical": 1.0}

#: Records ``sync`` handles per write transaction.
SYNC_PAGE = 1000

_d = decisions
# What sync decides on, without the payload: the records after a seq, a page at a time ...
_SYNC_ROWS = (select(_d.c.seq, _d.c.decision_id, _d.c.item_id, _d.c.source, _d.c.action, _d.c.review_required)
              .where(_d.c.seq > bindparam("after")).order_by(_d.c.seq).limit(bindparam("page")))
# ... and which of some decisions another one supersedes (the unique index on supersedes answers it).
_SUPERSEDED = select(_d.c.supersedes).where(_d.c.supersedes.in_(bindparam("ids", expanding=True)))


def _reach_of(context: dict[str, Any] | None, field: str) -> float | None:
    value = context.get(field) if context is not None else None
    return float(value) if isinstance(value, int | float) else None


def _wants_review(source: str, action: str, review_required: bool) -> bool:
    """``ReviewDesk.wants_review`` on the log's columns: an automated hold, or a decision that asks for review."""
    return source == "automated" and (action == Action.hold_for_review.value or bool(review_required))


#: Used when a policy has no ``review:`` section: one queue for everything.
DEFAULT_REVIEW = Review(
    queues={"general": ReviewQueue(), "appeals": ReviewQueue(sla_hours=72), "senior": ReviewQueue()},
    default_queue="general", appeals_queue="appeals", senior_queue="senior",
)


class ReviewError(RefereeError):
    """A review operation that cannot be done as asked (the message says why and what to do)."""


class ReviewConflict(ReviewError):
    """Someone else decided the item first; ``head`` is its current decision."""

    def __init__(self, message: str, head: Decision | None) -> None:
        super().__init__(message)
        self.head = head


class Task(Frozen):
    task_id: str
    queue: str
    kind: TaskKind
    slot: int
    item_id: str
    decision_id: str
    category: str | None
    severity: str | None
    priority: float
    rank: float
    enqueued_at: float
    due_at: float
    status: Literal["open", "claimed", "done", "stale"]
    claimed_by: str | None = None
    claimed_at: float | None = None
    lease_until: float | None = None
    exclude_reviewer: str | None = None
    appeal_id: str | None = None
    completed_at: float | None = None

    def overdue(self, now: float) -> bool:
        return now > self.due_at and self.status in ("open", "claimed")


class Verdict(Frozen):
    """What a reviewer decided. ``change`` takes a new ``action`` and/or ``categories``."""

    kind: VerdictKind
    action: Action | None = None
    categories: tuple[str, ...] | None = None
    seconds_spent: float = Field(default=0.0, ge=0)
    notes: str = ""


class VerdictRecord(Frozen):
    verdict_id: str
    task_id: str
    kind: TaskKind
    item_id: str
    decision_id: str
    reviewer_id: str
    verdict: VerdictKind
    action: Action | None
    categories: tuple[str, ...]
    new_decision_id: str | None
    seconds_spent: float
    notes: str
    recorded_at: float


@dataclass(frozen=True)
class QueueStats:
    queue: str
    open: int
    claimed: int
    overdue: int
    done: int
    sla_hours: float
    next_due_at: float | None


# -- the priority function -------------------------------------------------------
def reach_score(reach: float | None) -> float:
    """``min(1, log10(1 + reach) / 7)``: 10 followers 0.15, 10 k 0.57, 10 M 1."""
    if not reach or reach <= 0:
        return 0.0
    return min(1.0, math.log10(1.0 + reach) / 7.0)


def uncertainty_score(score: float | None) -> float:
    """1 at a score of 0.5, 0 at 0 or 1; 0 when there is no score."""
    if score is None:
        return 0.0
    return max(0.0, 1.0 - 2.0 * abs(score - 0.5))


def priority(queue: ReviewQueue, severity: str | None, reach: float | None, score: float | None,
             elapsed_s: float = 0.0) -> float:
    """The documented priority (module docstring) of a task ``elapsed_s`` after it was queued."""
    sla_s = queue.sla_hours * 3600.0
    return (queue.severity_weight * SEVERITY_SCORE.get(severity or "", 0.0)
            + queue.reach_weight * reach_score(reach)
            + queue.uncertainty_weight * uncertainty_score(score)
            + queue.deadline_weight * elapsed_s / sla_s)


# -- the desk ------------------------------------------------------------------------
class ReviewDesk:
    """Queues, claims and verdicts over one SQL ``Store`` and the policy's ``review:`` section."""

    def __init__(self, store: Store, policy: Policy, lease_s: float = 900.0,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None) -> None:
        self.store = store
        self.policy = policy
        self.config: Review = policy.document.review or DEFAULT_REVIEW
        self.lease_s = lease_s
        self.clock = clock
        self._rng = rng or random.Random()

    # -- routing ---------------------------------------------------------------------
    def flagged_category(self, decision: Decision) -> tuple[str | None, float | None]:
        """The category the decision is mostly about (highest signal score) and that score."""
        best: tuple[str | None, float | None] = (decision.categories[0] if decision.categories else None, None)
        for signal in decision.signals:
            if decision.categories and signal.category not in decision.categories:
                continue
            if best[1] is None or signal.score > best[1]:
                best = (signal.category, signal.score)
        return best

    def severity(self, category: str | None) -> str | None:
        found = self.policy.document.categories.get(category or "")
        return found.severity if found else None

    def jurisdictions(self, country: str | None) -> tuple[str, ...]:
        return tuple(name for name, j in self.policy.document.jurisdictions.items() if country in j.countries)

    def route(self, decision: Decision) -> str:
        category, _ = self.flagged_category(decision)
        severity = self.severity(category)
        places = self.jurisdictions(decision.country)
        for r in self.config.routes:
            if r.categories is not None and category not in r.categories:
                continue
            if r.surfaces is not None and decision.surface not in r.surfaces:
                continue
            if r.jurisdictions is not None and not set(r.jurisdictions) & set(places):
                continue
            if r.severities is not None and severity not in r.severities:
                continue
            return r.queue
        return self.config.default_queue

    def queue_config(self, queue: str) -> ReviewQueue:
        try:
            return self.config.queues[queue]
        except KeyError:
            raise ReviewError(f"unknown review queue {queue!r}; the policy declares: "
                              f"{', '.join(sorted(self.config.queues))}") from None

    # -- enqueueing --------------------------------------------------------------------
    def enqueue(self, decision: Decision, kind: TaskKind = "review", queue: str | None = None, slot: int = 0,
                exclude_reviewer: str | None = None, appeal_id: str | None = None,
                reach: float | None = None, conn: Connection | None = None) -> Task | None:
        """Queue ``decision`` for review; None when that task (decision, kind, slot) exists already.
        ``reach``: the item's, when the caller has it (else read from the content store)."""
        queue = queue or self.route(decision)
        if reach is None:
            reach = self._reach(decision, self.queue_config(queue))
        row = self._task_row(decision, reach, kind, queue, slot, exclude_reviewer, appeal_id)
        if conn is not None:
            return self._insert_task(conn, row)
        with self.store.db.write() as c:
            return self._insert_task(c, row)

    def _task_row(self, decision: Decision, reach: float | None, kind: TaskKind = "review",
                  queue: str | None = None, slot: int = 0, exclude_reviewer: str | None = None,
                  appeal_id: str | None = None) -> dict[str, Any]:
        """The ``review_tasks`` row ``enqueue`` inserts (``reach`` None: unknown; reads and writes nothing)."""
        queue = queue or self.route(decision)
        cfg = self.queue_config(queue)
        category, score = self.flagged_category(decision)
        severity = self.severity(category)
        now = self.clock()
        sla_s = cfg.sla_hours * 3600.0
        base = priority(cfg, severity, reach, score)
        return {
            "task_id": "tsk_" + uuid.uuid4().hex[:24], "queue": queue, "kind": kind, "slot": slot,
            "item_id": decision.item_id, "decision_id": decision.decision_id, "category": category,
            "severity": severity, "priority": base,
            # the deadline term folded in (module docstring); a later slot (a double review) sorts just after
            "rank": base - cfg.deadline_weight * now / sla_s - slot * 1e-6,
            "enqueued_at": now, "due_at": now + sla_s, "status": "open", "exclude_reviewer": exclude_reviewer,
            "appeal_id": appeal_id,
        }

    def _insert_task(self, conn: Connection, row: dict[str, Any]) -> Task | None:
        # RETURNING says whether the row went in (psycopg's rowcount is -1 after ON CONFLICT DO NOTHING)
        stmt = self.store.db.insert_ignoring_duplicates(review_tasks).values(**row).returning(review_tasks.c.task_id)
        if conn.execute(stmt).first() is None:
            return None
        return Task(**row)

    def _reach(self, decision: Decision, cfg: ReviewQueue) -> float | None:
        item = self.store.content.get(decision.item_id, decision.content_hash)
        return _reach_of(item.context if item is not None else None, cfg.reach_field)

    def wants_review(self, decision: Decision) -> bool:
        return _wants_review(decision.source, decision.action.value, decision.review_required)

    def sampled_for_qa(self, decision: Decision) -> bool:
        """Deterministic share ``qa_sample_rate`` of decisions, by a hash of the id (repeatable)."""
        return self._sampled(decision.decision_id)

    def _sampled(self, decision_id: str) -> bool:
        if self.config.qa_sample_rate <= 0:
            return False
        h = int(hashlib.sha256(decision_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return h < self.config.qa_sample_rate

    def sync(self, limit: int = 10_000, page: int | None = None) -> list[Task]:
        """Read the log from where the last sync stopped: queue held heads, sample a share for QA.

        In pages of ``page`` records (``SYNC_PAGE``), each in two steps. Outside any write
        transaction: the few columns that decide (``_SYNC_ROWS``), whether each item's newest
        record of the page is still its head (nothing supersedes it), and only for the heads
        that want review or are sampled for QA the full decision and its task row. Then one
        short write transaction inserts those tasks and moves ``review_state`` past the page.
        Whether a decision is queued depends on the head at the time of the sync, as before;
        the rest of the records are never parsed. Several syncs at once may both queue a
        task; the unique (decision, kind, slot) keeps one."""
        page = page or SYNC_PAGE
        with self.store.db.read() as conn:
            last = conn.execute(select(review_state.c.last_seq).where(review_state.c.id == 1)).scalar() or 0
        made: list[Task] = []
        left = limit
        while left > 0:
            size = min(page, left)
            with self.store.db.read() as conn:
                rows = conn.execute(_SYNC_ROWS, {"after": last, "page": size}).all()
            if not rows:
                break
            made.extend(self._sync_page(rows))
            last = rows[-1].seq
            left -= len(rows)
            if len(rows) < size:
                break
        return made

    def _sync_page(self, rows: Sequence[Any]) -> list[Task]:
        latest: dict[str, Any] = {}
        for r in rows:  # only the newest record of an item can be its head (in the order items first come)
            latest[r.item_id] = r
        wanted: list[tuple[str, TaskKind]] = []
        for r in latest.values():
            if _wants_review(r.source, r.action, r.review_required):
                wanted.append((r.decision_id, "review"))
            elif self._sampled(r.decision_id):
                wanted.append((r.decision_id, "qa"))
        tasks: list[dict[str, Any]] = []
        if wanted:
            with self.store.db.read() as conn:
                # An item's decisions form one chain (unique supersedes): its head is the one nothing supersedes.
                superseded = set(conn.execute(_SUPERSEDED, {"ids": [i for i, _ in wanted]}).scalars())
            heads = [(i, kind) for i, kind in wanted if i not in superseded]
            decisions = self.store.log.get_many([i for i, _ in heads]) if heads else {}
            # The items' reach in one read, not one content lookup per task.
            contexts = self.store.content.contexts([(d.item_id, d.content_hash) for d in decisions.values()])
            for decision_id, kind in heads:
                decision = decisions.get(decision_id)
                if decision is None:
                    continue
                queue = self.route(decision)
                reach = _reach_of(contexts.get((decision.item_id, decision.content_hash)),
                                  self.queue_config(queue).reach_field)
                tasks.append(self._task_row(decision, reach, queue=queue) if kind == "review"
                             else self._task_row(decision, reach, kind="qa", queue=queue, slot=1))
        new_last = rows[-1].seq
        with self.store.db.write() as conn:
            inserted: set[str] = set()
            if tasks:  # one statement for the page; RETURNING names the rows that went in (not the duplicates)
                stmt = self.store.db.insert_ignoring_duplicates(review_tasks).returning(review_tasks.c.task_id)
                inserted = set(conn.execute(stmt, tasks).scalars())
            stmt = (self.store.db.insert_ignoring_duplicates(review_state).values(id=1, last_seq=new_last)
                    .returning(review_state.c.id))
            if conn.execute(stmt).first() is None:
                conn.execute(update(review_state).where(review_state.c.id == 1).values(last_seq=new_last))
        return [Task(**row) for row in tasks if row["task_id"] in inserted]

    def sample(self, strategy: Literal["uncertainty", "disagreement", "random"], n: int,
               limit: int = 5_000, queue: str | None = None) -> list[Task]:
        """Active learning: queue for QA the ``n`` automated heads whose labels would help the model most.

        ``uncertainty``: highest ``uncertainty_score`` of the flagged score; ``disagreement``: the
        largest spread between detectors' scores for one category; ``random``: uniform."""
        candidates = [d for d in self.store.log.list(limit=limit) if d.source == "automated"]
        heads = self.store.log.heads(list({d.item_id for d in candidates}))
        pool = [d for d in candidates if heads.get(d.item_id) == d]
        with self.store.db.read() as conn:  # items already queued, or already labelled, add nothing
            queued = set(conn.execute(select(review_tasks.c.decision_id).where(
                review_tasks.c.decision_id.in_([d.decision_id for d in pool]))).scalars())
        pool = [d for d in pool if d.decision_id not in queued]
        if strategy == "random":
            chosen = self._rng.sample(pool, min(n, len(pool)))
        elif strategy == "uncertainty":
            chosen = sorted(pool, key=lambda d: -max((uncertainty_score(s.score) for s in d.signals), default=0))[:n]
        elif strategy == "disagreement":
            chosen = sorted(pool, key=lambda d: -_spread(d))[:n]
        else:
            raise ReviewError(f"unknown sampling strategy {strategy!r}; choose uncertainty, disagreement or random")
        made = []
        with self.store.db.write() as conn:
            for d in chosen:
                task = self.enqueue(d, kind="qa", slot=1, queue=queue, conn=conn)
                if task is not None:
                    made.append(task)
        return made

    # -- claims --------------------------------------------------------------------------
    def claim(self, reviewer_id: str, queue: str) -> Task | None:
        """The next task of ``queue`` for this reviewer, leased to them for ``lease_s``; None when none.

        Expired leases of the queue go back to ``open`` first (their holder can no longer
        submit). Then the first overdue task the reviewer may take, else the first in time,
        by ``rank``: each a walk of an index that stops at the first eligible row."""
        self.queue_config(queue)
        now = self.clock()
        t = review_tasks
        self._reap(queue, now)
        with self.store.db.write() as conn:
            task_id = (conn.execute(self._candidate(queue, reviewer_id, now, overdue=True)).scalar()
                       or conn.execute(self._candidate(queue, reviewer_id, now, overdue=False)).scalar())
            if task_id is None:
                return None
            done = conn.execute(
                update(t).where(t.c.task_id == task_id, t.c.status == "open")
                .values(status="claimed", claimed_by=reviewer_id, claimed_at=now, lease_until=now + self.lease_s)
            )
            if done.rowcount != 1:  # cannot happen under the write lock / row lock; refuse rather than share
                return None
            row = conn.execute(select(t).where(t.c.task_id == task_id)).one()
        return Task(**row._mapping)

    def _candidate(self, queue: str, reviewer_id: str, now: float, overdue: bool) -> Select[tuple[str]]:
        t = review_tasks
        other = aliased(review_tasks)
        v = review_verdicts
        query = select(t.c.task_id).where(
            t.c.queue == queue, t.c.status == "open",
            or_(t.c.exclude_reviewer.is_(None), t.c.exclude_reviewer != reviewer_id),
            ~exists().where(v.c.decision_id == t.c.decision_id, v.c.reviewer_id == reviewer_id),
            ~exists().where(v.c.new_decision_id == t.c.decision_id, v.c.reviewer_id == reviewer_id,
                            t.c.kind.in_(("appeal", "qa", "senior"))),
            ~exists().where(other.c.decision_id == t.c.decision_id, other.c.task_id != t.c.task_id,
                            other.c.claimed_by == reviewer_id, other.c.status == "claimed"),
        )
        if overdue:
            query = query.where(t.c.due_at < now)
        # rank alone, so the (queue, status, rank) index gives the order (the slot is folded into rank)
        return query.order_by(t.c.rank.desc()).limit(1).with_for_update(skip_locked=True, of=t)

    def _reap(self, queue: str, now: float) -> None:
        """Abandoned tasks (lease expired) return to the queue."""
        t = review_tasks
        expired = select(t.c.task_id).where(t.c.queue == queue, t.c.status == "claimed", t.c.lease_until < now)
        with self.store.db.read() as conn:  # most claims find none: no write transaction for them
            if conn.execute(expired.limit(1)).first() is None:
                return
        expired = expired.with_for_update(skip_locked=True)
        with self.store.db.write() as conn:
            conn.execute(update(t).where(t.c.task_id.in_(expired.scalar_subquery()))
                         .values(status="open", claimed_by=None, claimed_at=None, lease_until=None))

    def renew(self, task_id: str, reviewer_id: str) -> Task:
        """Extend a held lease (the console calls this while the item is open)."""
        now = self.clock()
        with self.store.db.write() as conn:
            done = conn.execute(
                update(review_tasks)
                .where(review_tasks.c.task_id == task_id, review_tasks.c.claimed_by == reviewer_id,
                       review_tasks.c.status == "claimed")
                .values(lease_until=now + self.lease_s))
        if done.rowcount != 1:
            raise ReviewError(f"task {task_id!r} is not held by {reviewer_id!r}: claim the next task instead")
        return self.task(task_id)

    def release(self, task_id: str, reviewer_id: str) -> None:
        """Give a claimed task back to its queue (skip)."""
        with self.store.db.write() as conn:
            conn.execute(
                update(review_tasks)
                .where(review_tasks.c.task_id == task_id, review_tasks.c.claimed_by == reviewer_id,
                       review_tasks.c.status == "claimed")
                .values(status="open", claimed_by=None, claimed_at=None, lease_until=None))

    def task(self, task_id: str) -> Task:
        with self.store.db.read() as conn:
            row = conn.execute(select(review_tasks).where(review_tasks.c.task_id == task_id)).first()
        if row is None:
            raise ReviewError(f"unknown review task {task_id!r}")
        return Task(**row._mapping)

    def tasks(self, queue: str | None = None, status: Sequence[str] = ("open", "claimed"),
              limit: int = 100) -> list[Task]:
        """Tasks in claim order (overdue first, then by priority)."""
        now = self.clock()
        t = review_tasks
        q = select(t).where(t.c.status.in_(list(status)))
        if queue is not None:
            q = q.where(t.c.queue == queue)
        q = q.order_by(case((t.c.due_at < now, 0), else_=1), t.c.rank.desc(), t.c.slot, t.c.enqueued_at, t.c.task_id)
        with self.store.db.read() as conn:
            return [Task(**r._mapping) for r in conn.execute(q.limit(limit))]

    def stats(self, queues: Iterable[str] | None = None) -> list[QueueStats]:
        now = self.clock()
        t = review_tasks
        names = list(queues) if queues is not None else list(self.config.queues)
        q = (select(t.c.queue, t.c.status, func.count(), func.sum(case((t.c.due_at < now, 1), else_=0)),
                    func.min(t.c.due_at))
             .where(t.c.queue.in_(names)).group_by(t.c.queue, t.c.status))
        counts: dict[str, dict[str, Any]] = {n: {"open": 0, "claimed": 0, "done": 0, "overdue": 0, "next": None}
                                             for n in names}
        with self.store.db.read() as conn:
            for queue, status, n, overdue, due in conn.execute(q):
                c = counts[queue]
                if status in ("open", "claimed"):
                    c[status] += n
                    c["overdue"] += int(overdue or 0)
                    c["next"] = due if c["next"] is None else min(c["next"], due)
                elif status == "done":
                    c["done"] += n
        return [QueueStats(n, c["open"], c["claimed"], c["overdue"], c["done"],
                           self.queue_config(n).sla_hours, c["next"]) for n, c in counts.items()]

    # -- verdicts ------------------------------------------------------------------------
    def label_of(self, verdict: Verdict, reviewed: Decision) -> tuple[Action | None, tuple[str, ...]]:
        """The (action, categories) a verdict means for the reviewed decision; (None, ()) for escalate."""
        if verdict.kind == "escalate":
            return None, ()
        if verdict.kind == "overturn":
            return Action.allow, ()
        if verdict.kind == "uphold":
            action = reviewed.action
            if action is Action.hold_for_review:
                action = self.config.held_uphold_action
            return action, reviewed.categories
        if verdict.action is None and verdict.categories is None:
            raise ReviewError("a 'change' verdict needs a new action or new categories (or both)")
        categories = reviewed.categories if verdict.categories is None else verdict.categories
        unknown = [c for c in categories if c not in self.policy.document.categories]
        if unknown:
            raise ReviewError(f"verdict categories {unknown} are not in the policy; choose from "
                              f"{', '.join(self.policy.document.categories)}")
        action = verdict.action or reviewed.action
        if action is Action.allow:
            categories = ()
        return action, tuple(categories)

    def submit(self, task_id: str, reviewer_id: str, verdict: Verdict) -> VerdictRecord:
        """Record a verdict on a task this reviewer holds.

        ``review``, ``senior`` and ``appeal`` verdicts write a decision (source ``review``, or
        ``appeal``) that supersedes the item's head; ``escalate`` moves the work to the senior
        queue; ``qa`` verdicts are labels only, and a disagreement goes to the senior queue."""
        task = self.task(task_id)
        if task.status != "claimed" or task.claimed_by != reviewer_id:
            raise ReviewError(f"task {task_id!r} is not held by {reviewer_id!r} (its lease expired or someone "
                              f"else holds it): claim the next task instead")
        if task.kind == "appeal" and verdict.kind not in ("uphold", "overturn"):
            raise ReviewError(f"an appeal is upheld or overturned, not {verdict.kind!r}")
        reviewed = self.store.log.get(task.decision_id)
        if reviewed is None:
            raise ReviewError(f"task {task_id!r} names decision {task.decision_id!r}, which the log does not hold")
        action, categories = self.label_of(verdict, reviewed)
        now = self.clock()
        new: Decision | None = None
        if verdict.kind != "escalate" and task.kind != "qa":
            assert action is not None
            head = self.store.log.head(task.item_id)
            if head is None or (head.decision_id != reviewed.decision_id and head.human):
                self._close(task, "stale", now)
                raise ReviewConflict(f"item {task.item_id!r} was decided meanwhile ({head and head.decision_id}); "
                                     f"the task is closed", head)
            stamp = datetime.fromtimestamp(now, timezone.utc)
            source = "appeal" if task.kind == "appeal" else "review"
            proposed = head.model_copy(update={
                "decision_id": ids.decision_id(head.input_key, head.decision_id, source,
                                               salt=f"{reviewer_id}@{stamp.isoformat()}"),
                "action": action, "categories": categories, "source": source,
                "strike": head.strike and action is not Action.allow,  # an overturn takes the strike back
                "supersedes": head.decision_id, "automated_decision": False, "review_required": False,
                "provisional": False, "created_at": stamp,
            })
            new = self.store.supersede(head.decision_id, proposed)
            if new.decision_id != proposed.decision_id:
                self._close(task, "stale", now)
                raise ReviewConflict(f"item {task.item_id!r} was decided meanwhile ({new.decision_id})", new)
        record = VerdictRecord(
            verdict_id=_ordered_id("vrd_"), task_id=task.task_id, kind=task.kind, item_id=task.item_id,
            decision_id=task.decision_id, reviewer_id=reviewer_id, verdict=verdict.kind, action=action,
            categories=categories, new_decision_id=new.decision_id if new else None,
            seconds_spent=verdict.seconds_spent, notes=verdict.notes, recorded_at=now)
        with self.store.db.write() as conn:
            conn.execute(review_verdicts.insert().values(
                **record.model_dump(exclude={"action", "categories"}),
                action=action.value if action else None, categories=list(categories)))
            conn.execute(update(review_tasks).where(review_tasks.c.task_id == task.task_id)
                         .values(status="done", completed_at=now))
            senior = self.config.senior_queue
            if verdict.kind == "escalate":
                self.enqueue(self.store.log.head(task.item_id) or reviewed, kind="senior", queue=senior,
                             slot=_slot(conn, task.decision_id, "senior"), conn=conn)
            elif task.kind in ("qa", "review") and self._disagrees(conn, task, record, reviewed):
                target = self.store.log.head(task.item_id) or reviewed
                self.enqueue(target, kind="senior", queue=senior, slot=_slot(conn, target.decision_id, "senior"),
                             conn=conn)
            self._after_verdict(conn, task, record, new)
        if new is not None and task.kind in ("review", "senior") and self.sampled_for_qa(new):
            # a share of human verdicts is reviewed again by someone else (agreement)
            self.enqueue(reviewed, kind="qa", slot=2)
        return record

    def _after_verdict(self, conn: Connection, task: Task, record: VerdictRecord, new: Decision | None) -> None:
        """An appeal's verdict is its outcome: upheld, or overturned with the reversed action kept."""
        if task.kind != "appeal" or task.appeal_id is None:
            return
        reviewed = self.store.log.get(task.decision_id)
        overturned = record.verdict == "overturn"
        conn.execute(update(appeals).where(appeals.c.appeal_id == task.appeal_id).values(
            status="overturned" if overturned else "upheld",
            outcome_decision_id=new.decision_id if new else None,
            reversed_action=reviewed.action.value if overturned and reviewed else None,
            decided_by=record.reviewer_id, decided_at=record.recorded_at))

    def _disagrees(self, conn: Connection, task: Task, record: VerdictRecord, reviewed: Decision) -> bool:
        others = conn.execute(select(review_verdicts.c.action, review_verdicts.c.categories).where(
            review_verdicts.c.decision_id == task.decision_id, review_verdicts.c.verdict_id != record.verdict_id,
            review_verdicts.c.verdict != "escalate")).all()
        mine = (record.action, set(record.categories))
        if others:
            return any((Action(a) if a else None, set(c)) != mine for a, c in others)
        if task.kind != "qa":  # a first verdict has nothing to disagree with
            return False
        theirs_action = self.config.held_uphold_action if reviewed.action is Action.hold_for_review else reviewed.action
        return (theirs_action, set(reviewed.categories) if theirs_action is not Action.allow else set()) != mine

    def _close(self, task: Task, status: str, now: float) -> None:
        with self.store.db.write() as conn:
            conn.execute(update(review_tasks).where(review_tasks.c.task_id == task.task_id)
                         .values(status=status, completed_at=now))

    def verdicts(self, since: float | None = None, decision_id: str | None = None) -> list[VerdictRecord]:
        v = review_verdicts
        q = select(v).order_by(v.c.recorded_at, v.c.verdict_id)
        if since is not None:
            q = q.where(v.c.recorded_at >= since)
        if decision_id is not None:
            q = q.where(v.c.decision_id == decision_id)
        with self.store.db.read() as conn:
            return [VerdictRecord(**{**r._mapping, "categories": tuple(r.categories)}) for r in conn.execute(q)]


def _ordered_id(prefix: str) -> str:
    """Wall-clock nanoseconds first, so ids sort in the order they were made (ties on ``recorded_at``)."""
    return f"{prefix}{time.time_ns():016x}{uuid.uuid4().hex[:8]}"


def _slot(conn: Connection, decision_id: str, kind: str) -> int:
    n = conn.execute(select(func.count()).select_from(review_tasks).where(
        review_tasks.c.decision_id == decision_id, review_tasks.c.kind == kind)).scalar()
    return int(n or 0)


def _spread(decision: Decision) -> float:
    by_category: dict[str, list[float]] = {}
    for s in decision.signals:
        by_category.setdefault(s.category, []).append(s.score)
    return max((max(v) - min(v) for v in by_category.values() if len(v) > 1), default=0.0)

