"""``shadow report``: on a constructed set of five items, every figure equals the one worked out by hand."""

from __future__ import annotations

from datetime import timedelta

from referee.model import Action, ContentItem
from referee.online.shadow import shadow_store
from referee.online.shadow_report import shadow_report
from referee.store import MemoryStore, Store
from referee.store.protocols import ShadowDecision
from tests.records.conftest import T0, decision

A = Action
#: item, surface, country, champion (action, categories), candidate (action, categories)
CASES = [
    ("i1", "comment", "DE", (A.remove, ("hate",)), (A.remove, ("hate",))),
    ("i2", "comment", "FR", (A.allow, ()), (A.remove, ("spam",))),
    ("i3", "message", "DE", (A.hold_for_review, ("harassment",)), (A.allow, ())),
    ("i4", "message", None, (A.allow, ()), (A.allow, ())),
    ("i5", "comment", "DE", (A.limit_reach, ("spam",)), (A.limit_reach, ("spam", "hate"))),
]


def constructed(store: Store | MemoryStore | None = None) -> Store | MemoryStore:
    store = store if store is not None else MemoryStore()
    rows = []
    for n, (item_id, surface, country, (ca, cc), (xa, xc)) in enumerate(CASES):
        item = ContentItem(id=item_id, text=f"text {item_id}", surface=surface, country=country)
        champion = decision(item, action=ca, categories=cc, created_at=T0 + timedelta(minutes=n))
        store.append([(item, champion)])
        candidate = decision(item, action=xa, categories=xc, source="automated", created_at=T0 + timedelta(minutes=n))
        candidate = candidate.model_copy(update={"decision_id": "cand-" + item_id})
        rows.append(ShadowDecision(candidate_id="v2", champion_decision_id=champion.decision_id,
                                   champion_action=ca, decision=candidate))
    shadow_store(store).add_shadow(rows)
    return store


def test_the_shadow_report_equals_the_hand_computed_figures():
    r = shadow_report(constructed(), "v2")
    assert (r.items, r.agreed, r.agreement, r.changed) == (5, 3, 0.6, 2)
    assert r.overall is not None and (r.overall.champion_actioned, r.overall.candidate_actioned, r.overall.delta) == (
        3, 3, 0.0)
    surface = {g.value: (g.items, g.champion_actioned, g.candidate_actioned) for g in r.by_surface}
    assert surface == {"comment": (3, 2, 3), "message": (2, 1, 0)}
    assert {g.value: round(g.delta, 6) for g in r.by_surface} == {"comment": round(1 / 3, 6), "message": -0.5}
    country = {g.value: (g.items, g.champion_actioned, g.candidate_actioned) for g in r.by_country}
    assert country == {"DE": (3, 3, 2), "FR": (1, 0, 1), "none": (1, 0, 0)}
    category = {g.value: (g.items, g.champion_actioned, g.candidate_actioned, g.delta) for g in r.by_category}
    assert category == {"harassment": (5, 1, 0, -0.2), "hate": (5, 1, 2, 0.2), "spam": (5, 1, 2, 0.2)}
    assert r.transitions == {"allow->allow": 1, "allow->remove": 1, "hold_for_review->allow": 1,
                             "limit_reach->limit_reach": 1, "remove->remove": 1}
    assert sorted(c.item_id for c in r.sample) == ["i2", "i3"]
    i3 = next(c for c in r.sample if c.item_id == "i3")
    assert (i3.champion_action, i3.champion_categories, i3.candidate_action) == (A.hold_for_review,
                                                                                 ("harassment",), A.allow)
    text = r.text()
    assert "agreement with the champion: 60.00%" in text and "i3 [message, DE] hold_for_review (harassment) -> allow" in text


def test_the_window_and_the_sample_size_apply():
    store = constructed()
    r = shadow_report(store, "v2", since=T0 + timedelta(minutes=2), sample=1)
    assert r.items == 3 and r.changed == 1 and len(r.sample) == 1 and r.sample[0].item_id == "i3"
    assert shadow_report(store, "v2", sample=1).sample == shadow_report(store, "v2", sample=1).sample  # reproducible
    empty = shadow_report(store, "nobody")
    assert empty.items == 0 and empty.agreement is None and "no shadow decisions" in empty.text()
