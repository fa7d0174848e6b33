"""Appeals (DSA Art. 20 internal complaints): filed against a decision, decided by someone else.

``file_appeal`` records the complaint and queues an ``appeal`` task in the policy's
``review.appeals_queue`` for the item's current decision, excluding the reviewer who
made that decision (and, as for every task, anyone who already gave a verdict on it).
The appeal's outcome is the verdict on that task (``ReviewDesk.submit``):

- ``uphold``: a decision of source ``appeal`` with the same action supersedes the head,
  so the item's history shows the complaint was handled;
- ``overturn``: a decision of source ``appeal`` with action ``allow`` and no categories
  supersedes it (the content is restored); the appeal records the reversed action
  (``reversed_action``) for the transparency report.

Re-moderation keeps a human head, so a restored item stays restored (unless the policy
says ``reautomation: override``).
"""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy import select

from referee.model.base import Frozen
from referee.records.review import ReviewDesk, ReviewError
from referee.store.sql.review_tables import appeals, review_verdicts

__all__ = ["Appeal", "file_appeal", "get_appeal", "list_appeals"]


class Appeal(Frozen):
    appeal_id: str
    item_id: str
    decision_id: str
    reason: str
    received_at: float
    status: Literal["open", "upheld", "overturned"]
    original_reviewer: str | None = None
    outcome_decision_id: str | None = None
    reversed_action: str | None = None
    decided_by: str | None = None
    decided_at: float | None = None


def file_appeal(desk: ReviewDesk, decision_id: str, reason: str) -> Appeal:
    """Record an appeal against ``decision_id`` and queue it; an open appeal of the same
    decision is returned as it is (filing twice is one appeal)."""
    reason = reason.strip()
    if not reason:
        raise ReviewError("an appeal needs the user's reason ('reason': why the decision is wrong)")
    decision = desk.store.log.get(decision_id)
    if decision is None:
        raise ReviewError(f"unknown decision {decision_id!r}: appeal a decision id that referee returned")
    head = desk.store.log.head(decision.item_id) or decision
    with desk.store.db.read() as conn:
        open_row = conn.execute(select(appeals).where(
            appeals.c.decision_id == head.decision_id, appeals.c.status == "open")).first()
        if open_row is not None:
            return Appeal(**open_row._mapping)
        original = conn.execute(select(review_verdicts.c.reviewer_id).where(
            review_verdicts.c.new_decision_id == head.decision_id)).scalar()
    appeal = Appeal(appeal_id="apl_" + uuid.uuid4().hex[:24], item_id=head.item_id, decision_id=head.decision_id,
                    reason=reason, received_at=desk.clock(), status="open", original_reviewer=original)
    with desk.store.db.write() as conn:
        conn.execute(appeals.insert().values(**appeal.model_dump()))
        slot = len(conn.execute(select(appeals.c.appeal_id).where(
            appeals.c.decision_id == head.decision_id)).all()) - 1  # earlier, decided appeals of it
        desk.enqueue(head, kind="appeal", queue=desk.config.appeals_queue, slot=slot,
                     exclude_reviewer=original, appeal_id=appeal.appeal_id, conn=conn)
    return appeal


def get_appeal(desk: ReviewDesk, appeal_id: str) -> Appeal:
    with desk.store.db.read() as conn:
        row = conn.execute(select(appeals).where(appeals.c.appeal_id == appeal_id)).first()
    if row is None:
        raise ReviewError(f"unknown appeal {appeal_id!r}")
    return Appeal(**row._mapping)


def list_appeals(desk: ReviewDesk, since: float | None = None) -> list[Appeal]:
    q = select(appeals).order_by(appeals.c.received_at)
    if since is not None:
        q = q.where(appeals.c.received_at >= since)
    with desk.store.db.read() as conn:
        return [Appeal(**r._mapping) for r in conn.execute(q)]
