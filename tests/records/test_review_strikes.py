"""Strikes: weights per category over a window, account actions at thresholds; an overturn takes one back."""

from __future__ import annotations

from datetime import timedelta

from referee.model import Action, ContentItem
from referee.policy import Policy
from referee.records.review import ReviewDesk, Verdict
from referee.records.strikes import standing
from referee.store import Store
from tests.records import test_review as base
from tests.records.test_review import POLICY, automated, put

clock, pg_url, store, url = base.clock, base.pg_url, base.store, base.url

STRIKES = POLICY + """  strikes:
    window_days: 30
    weights: {hate: 2, spam: 0.5}
    thresholds:
      - {points: 2, account_action: warn}
      - {points: 4, account_action: suspend_7d}
"""


def test_strikes_add_up_within_the_window_and_an_overturn_takes_one_back(store: Store) -> None:
    policy = Policy.from_yaml(STRIKES)
    desk = ReviewDesk(store, policy)
    made = []
    for n, (cat, age_days) in enumerate([("hate", 1), ("hate", 2), ("spam", 3), ("hate", 45)]):
        it = ContentItem(id=f"s-{n}", text=f"t {n}", author_id="troll")
        d = automated(it, cat, action=Action.remove)
        d = d.model_copy(update={"strike": True, "created_at": d.created_at - timedelta(days=age_days)})
        made.append(put(store, it, d))
    now = made[0].created_at + timedelta(days=1)
    s = standing(store, policy, "troll", now=now)
    assert s.points == 4.5 and s.account_action == "suspend_7d" and len(s.strikes) == 3  # the 45-day one expired
    desk.enqueue(made[0], kind="appeal", queue="appeals")
    task = desk.claim("judge", "appeals")
    assert task is not None
    desk.submit(task.task_id, "judge", Verdict(kind="overturn"))
    s = standing(store, policy, "troll", now=now)
    assert s.points == 2.5 and s.account_action == "warn"
    assert standing(store, policy, "nobody").points == 0
