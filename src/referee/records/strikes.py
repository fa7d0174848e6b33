"""Account strikes: per-category weights over a window, account actions at thresholds (policy ``review.strikes``).

An item counts when its **current** decision (its head) carries ``strike`` and was made within
``window_days``: a verdict that overturns a removal takes the strike back (review sets ``strike``
false on ``allow``), so appeals undo strikes too. The item's points are the highest weight of its
categories (1 for a category without a weight); the author's standing is the sum, and the account
action is the one of the highest threshold reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from referee.policy import Policy
from referee.store.sql.store import Store
from referee.store.sql.tables import items

__all__ = ["Standing", "Strike", "standing"]


@dataclass(frozen=True)
class Strike:
    item_id: str
    decision_id: str
    points: float
    at: datetime


@dataclass(frozen=True)
class Standing:
    author_id: str
    points: float
    account_action: str | None
    strikes: list[Strike] = field(default_factory=list)


def standing(store: Store, policy: Policy, author_id: str, now: datetime | None = None) -> Standing:
    config = policy.document.review.strikes if policy.document.review else None
    if config is None:
        return Standing(author_id, 0.0, None)
    now = now or datetime.now(timezone.utc)
    since = now - timedelta(days=config.window_days)
    with store.db.read() as conn:
        item_ids = list(conn.execute(select(items.c.item_id).where(items.c.author_id == author_id).distinct()).scalars())
    strikes = []
    for item_id, head in sorted(store.log.heads(item_ids).items()):
        if head.strike and head.created_at >= since:
            points = max((config.weights.get(c, 1.0) for c in head.categories), default=1.0)
            strikes.append(Strike(item_id, head.decision_id, points, head.created_at))
    total = sum(s.points for s in strikes)
    reached = [t for t in config.thresholds if total >= t.points]
    action = max(reached, key=lambda t: t.points).account_action if reached else None
    return Standing(author_id, total, action, strikes)
