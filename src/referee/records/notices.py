"""Notices of illegal content (DSA Art. 16), trusted flaggers first (Art. 22), and their outcome.

``file_notice`` stores a notice durably and answers with a receipt (its id and time). A
notice names the item (``item_id``) or where it is (``url``), the category it alleges (a
policy category, or none: the notifier did not say), the notifier's explanation and,
optionally, their contact. Whether it comes from a trusted flagger is not the notifier's
claim: it is the scope of the API key that filed it (``trusted_flagger``).

**Routing.** A notice about an item referee has decided goes to review at once: onto the
item's open review task if it has one, else a new ``review`` task in the queue the policy
routes the item to (by the alleged category when the decision has none). Its task's rank is
raised by ``TRUSTED_BOOST`` for a trusted flagger and ``NOTICE_BOOST`` for anyone else, so
in its queue a trusted flagger's notice comes before every other notice and every notice
before automated holds (overdue tasks still come first, as always). A notice about an item
referee has not seen (or only a URL) is kept ``unrouted``; ``route_pending`` tries again
(the platform moderates the item, or a person names it: ``referee notices route``).

**Outcome.** The notice's decision is the verdict on its task (``ReviewDesk.submit``);
``settle`` copies it onto the notice (``decided``, the verdict, the action and the decision
it wrote). An escalation follows the work to the senior queue. ``outcomes`` lists decided
notices whose notifier was not told yet, and ``mark_communicated`` records that they were:
the platform sends the message (referee sends no mail), then marks it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from referee.model import Decision
from referee.model.base import Frozen
from referee.records.review import ReviewDesk, ReviewError
from referee.store.sql.account_tables import notices
from referee.store.sql.review_tables import review_tasks, review_verdicts

__all__ = ["NOTICE_BOOST", "TRUSTED_BOOST", "Notice", "NoticeError", "file_notice", "get_notice", "list_notices",
           "mark_communicated", "outcomes", "route_notice", "route_pending", "settle"]

#: Added to the rank of a task a notice is about (ranks of automated holds are at most about 4).
NOTICE_BOOST = 10.0
TRUSTED_BOOST = 100.0
MAX_EXPLANATION = 10_000

NoticeStatus = Literal["unrouted", "open", "decided"]


class NoticeError(ReviewError):
    """A notice that cannot be taken as given (the message names the field and the fix)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class Notice(Frozen):
    notice_id: str
    received_at: float
    item_id: str | None = None
    url: str | None = None
    category: str | None = None
    explanation: str
    notifier_contact: str | None = None
    trusted_flagger: bool = False
    key_id: str | None = None
    status: NoticeStatus = "unrouted"
    decision_id: str | None = None
    task_id: str | None = None
    outcome: str | None = None
    outcome_action: str | None = None
    outcome_decision_id: str | None = None
    decided_at: float | None = None
    communicated_at: float | None = None

    @property
    def source(self) -> str:
        """How a statement of reasons names this notice's source (``ItemMeta.notice``)."""
        return "trusted_flagger" if self.trusted_flagger else "article_16"


def file_notice(desk: ReviewDesk, explanation: str, item_id: str | None = None, url: str | None = None,
                category: str | None = None, notifier_contact: str | None = None, trusted_flagger: bool = False,
                key_id: str | None = None) -> Notice:
    """Store a notice and route it to review when referee knows its item."""
    explanation = (explanation or "").strip()
    item_id = (item_id or "").strip() or None
    url = (url or "").strip() or None
    if not explanation:
        raise NoticeError("a notice needs the notifier's explanation ('explanation': why the content is illegal, "
                          "DSA Art. 16(2)(a))", "explanation")
    if len(explanation) > MAX_EXPLANATION:
        raise NoticeError(f"'explanation' is {len(explanation)} characters; at most {MAX_EXPLANATION}", "explanation")
    if item_id is None and url is None:
        raise NoticeError("a notice names the content: give 'item_id' (the platform's id) or 'url' (where it is)",
                          "item_id")
    if url is not None and not url.startswith(("http://", "https://")):
        raise NoticeError(f"'url' must be an http(s) URL, got {url[:80]!r}", "url")
    if category is not None and category not in desk.policy.document.categories:
        raise NoticeError(f"unknown category {category!r}; choose one of "
                          f"{', '.join(desk.policy.document.categories)} (or leave it out)", "category")
    notice = Notice(notice_id="ntc_" + uuid.uuid4().hex[:24], received_at=desk.clock(), item_id=item_id, url=url,
                    category=category, explanation=explanation, notifier_contact=notifier_contact or None,
                    trusted_flagger=trusted_flagger, key_id=key_id)
    with desk.store.db.write() as conn:
        conn.execute(notices.insert().values(**notice.model_dump()))
        routed = route_notice(desk, notice, conn)
    return routed or notice


def route_notice(desk: ReviewDesk, notice: Notice, conn: Connection | None = None) -> Notice | None:
    """Put the notice on its item's review task (made if needed); None when its item is unknown."""
    if notice.item_id is None:
        return None
    head = desk.store.log.head(notice.item_id)
    if head is None:
        return None
    if conn is None:
        with desk.store.db.write() as c:
            return route_notice(desk, notice, c)
    boost = TRUSTED_BOOST if notice.trusted_flagger else NOTICE_BOOST
    t = review_tasks
    task_id = conn.execute(select(t.c.task_id).where(
        t.c.decision_id == head.decision_id, t.c.status.in_(("open", "claimed")),
        t.c.kind.in_(("review", "senior"))).order_by(t.c.enqueued_at).limit(1)).scalar()
    if task_id is None:
        target = head
        if notice.category and not head.categories:
            target = head.model_copy(update={"categories": (notice.category,)})  # route by the alleged category
        slot = int(conn.execute(select(func.count()).select_from(t).where(
            t.c.decision_id == head.decision_id, t.c.kind == "review")).scalar() or 0)
        task = desk.enqueue(target, kind="review", slot=slot, conn=conn)
        if task is None:
            raise ReviewError(f"could not queue notice {notice.notice_id} for review of {head.decision_id}")
        task_id = task.task_id
    # The boost is added once: a task a trusted flagger's notice raised is not raised again.
    priority, rank = conn.execute(select(t.c.priority, t.c.rank).where(t.c.task_id == task_id)).one()
    had = TRUSTED_BOOST if priority >= TRUSTED_BOOST else NOTICE_BOOST if priority >= NOTICE_BOOST else 0.0
    if boost > had:
        conn.execute(update(t).where(t.c.task_id == task_id).values(priority=priority + boost - had,
                                                                    rank=rank + boost - had))
    conn.execute(update(notices).where(notices.c.notice_id == notice.notice_id).values(
        status="open", decision_id=head.decision_id, task_id=task_id))
    return notice.model_copy(update={"status": "open", "decision_id": head.decision_id, "task_id": task_id})


def route_pending(desk: ReviewDesk, item_id: str | None = None, notice_id: str | None = None) -> list[Notice]:
    """Route the unrouted notices whose item referee now knows. With ``notice_id`` and ``item_id``,
    a person names the item a URL-only notice is about first."""
    if notice_id is not None and item_id is not None:
        with desk.store.db.write() as conn:
            done = conn.execute(update(notices).where(notices.c.notice_id == notice_id,
                                                      notices.c.status == "unrouted").values(item_id=item_id))
        if done.rowcount != 1:
            raise NoticeError(f"notice {notice_id!r} is not unrouted (or does not exist)", "notice_id")
    routed: list[Notice] = []
    for notice in list_notices(desk, status="unrouted"):
        if notice_id is not None and notice.notice_id != notice_id:
            continue
        done_notice = route_notice(desk, notice)
        if done_notice is not None:
            routed.append(done_notice)
    return routed


def settle(desk: ReviewDesk) -> list[Notice]:
    """Copy the verdict on each open notice's task onto the notice; returns the notices decided now."""
    decided: list[Notice] = []
    for notice in list_notices(desk, status="open"):
        if notice.task_id is None:
            continue
        task = desk.task(notice.task_id)
        if task.status in ("open", "claimed"):
            continue
        with desk.store.db.read() as conn:
            verdict = conn.execute(select(review_verdicts).where(review_verdicts.c.task_id == task.task_id)
                                   .order_by(review_verdicts.c.recorded_at.desc()).limit(1)).first()
        values: dict[str, Any]
        if verdict is not None and verdict.verdict == "escalate":
            senior = _open_task(desk, notice.item_id, kinds=("senior",))
            if senior is not None:
                with desk.store.db.write() as conn:
                    conn.execute(update(notices).where(notices.c.notice_id == notice.notice_id)
                                 .values(task_id=senior))
            continue
        if verdict is not None and verdict.new_decision_id is not None:
            values = {"outcome": verdict.verdict, "outcome_action": verdict.action,
                      "outcome_decision_id": verdict.new_decision_id, "decided_at": verdict.recorded_at}
        else:  # someone else decided the item meanwhile (the task went stale): that decision answers it
            head: Decision | None = desk.store.log.head(notice.item_id or "")
            if head is None:
                continue
            values = {"outcome": "decided", "outcome_action": head.action.value,
                      "outcome_decision_id": head.decision_id,
                      "decided_at": task.completed_at or desk.clock()}
        with desk.store.db.write() as conn:
            conn.execute(update(notices).where(notices.c.notice_id == notice.notice_id, notices.c.status == "open")
                         .values(status="decided", **values))
        decided.append(notice.model_copy(update={"status": "decided", **values}))
    return decided


def _open_task(desk: ReviewDesk, item_id: str | None, kinds: Sequence[str]) -> str | None:
    t = review_tasks
    with desk.store.db.read() as conn:
        found: str | None = conn.execute(select(t.c.task_id).where(
            t.c.item_id == (item_id or ""), t.c.kind.in_(list(kinds)), t.c.status.in_(("open", "claimed")))
            .order_by(t.c.enqueued_at).limit(1)).scalar()
    return found


def get_notice(desk: ReviewDesk, notice_id: str) -> Notice:
    with desk.store.db.read() as conn:
        row = conn.execute(select(notices).where(notices.c.notice_id == notice_id)).first()
    if row is None:
        raise NoticeError(f"unknown notice {notice_id!r}", "notice_id")
    return Notice(**row._mapping)


def list_notices(desk: ReviewDesk, status: str | None = None, since: float | None = None,
                 item_ids: Sequence[str] | None = None) -> list[Notice]:
    q = select(notices).order_by(notices.c.received_at, notices.c.notice_id)
    if status is not None:
        q = q.where(notices.c.status == status)
    if since is not None:
        q = q.where(notices.c.received_at >= since)
    if item_ids is not None:
        q = q.where(notices.c.item_id.in_(list(item_ids)))
    with desk.store.db.read() as conn:
        return [Notice(**r._mapping) for r in conn.execute(q)]


def outcomes(desk: ReviewDesk) -> list[Notice]:
    """Decided notices whose notifier has not been told the outcome yet (oldest first)."""
    settle(desk)
    return [n for n in list_notices(desk, status="decided") if n.communicated_at is None]


def mark_communicated(desk: ReviewDesk, notice_ids: Sequence[str], at: float | None = None) -> int:
    """Record that the platform told these notifiers their notice's outcome; returns how many."""
    stamp = at if at is not None else time.time()
    with desk.store.db.write() as conn:
        done = conn.execute(update(notices).where(notices.c.notice_id.in_(list(notice_ids)),
                                                  notices.c.status == "decided",
                                                  notices.c.communicated_at.is_(None)).values(communicated_at=stamp))
    return int(done.rowcount or 0)
