"""``referee shadow report``: how a candidate in shadow would have decided, against the champion.

Over the candidate's shadow decisions in [since, until):

- **agreement**: items on which the candidate took the champion's action (a Wilson interval);
- **action rates** (any action but ``allow``) of both, and the difference, overall and per
  surface and country (items of that surface or country), and per category (items the
  decider acted on *for* that category: its decision names it; out of every item, so a
  category's rates add up to what that category costs);
- **transitions**: how many items move from each champion action to each candidate action;
- **a sample of the items whose action would change**, for a reviewer to look at before
  the candidate is promoted: a reproducible pseudo-random draw (by the hash of the item
  id), so two runs over the same window show the same items.

The two engines decided the same items, so their rates are paired: the difference is
exact for these items, and no interval is given for it (an interval for independent
samples would be too wide).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime

from referee.model import Action
from referee.model.base import Frozen
from referee.online.shadow import shadow_store
from referee.stats import wilson_interval
from referee.store import MemoryStore, Store
from referee.store.protocols import ShadowDecision

__all__ = ["ChangedItem", "GroupDelta", "ShadowReport", "shadow_report"]


class GroupDelta(Frozen):
    """Action rates of champion and candidate over the items of one group."""

    group: str  # overall | surface | country | category
    value: str
    items: int
    champion_actioned: int
    candidate_actioned: int
    champion_rate: float
    candidate_rate: float
    delta: float


class ChangedItem(Frozen):
    item_id: str
    surface: str
    country: str | None
    champion_decision_id: str
    champion_action: Action
    champion_categories: tuple[str, ...]
    candidate_action: Action
    candidate_categories: tuple[str, ...]


class ShadowReport(Frozen):
    candidate: str
    since: datetime | None
    until: datetime | None
    items: int
    agreed: int
    agreement: float | None
    agreement_low: float
    agreement_high: float
    overall: GroupDelta | None
    by_surface: list[GroupDelta]
    by_country: list[GroupDelta]
    by_category: list[GroupDelta]
    transitions: dict[str, int]
    changed: int
    sample: list[ChangedItem]

    def text(self) -> str:
        if not self.items:
            return f"candidate {self.candidate}: no shadow decisions in this window"
        lines = [f"candidate {self.candidate}: {self.items} items, {self.changed} would change action",
                 (f"agreement with the champion: {self.agreement:.2%} [{self.agreement_low:.2%}, "
                  f"{self.agreement_high:.2%}] (95 % Wilson)"), ""]
        head = f"{'':<10}{'value':<22}{'items':>7}{'champion':>10}{'candidate':>11}{'delta':>9}"
        lines.append(head)
        for g in [*(x for x in [self.overall] if x), *self.by_surface, *self.by_country, *self.by_category]:
            lines.append(f"{g.group:<10}{g.value:<22}{g.items:>7}{g.champion_rate:>10.2%}{g.candidate_rate:>11.2%}"
                         f"{g.delta:>+9.2%}")
        lines.append("")
        lines.append("champion -> candidate: " + ", ".join(f"{k}: {v}" for k, v in self.transitions.items()))
        if self.sample:
            lines.append("")
            lines.append(f"items whose action would change (sample of {len(self.sample)}):")
            for c in self.sample:
                lines.append(f"  {c.item_id} [{c.surface}, {c.country or '-'}] {c.champion_action.value} "
                             f"({','.join(c.champion_categories) or '-'}) -> {c.candidate_action.value} "
                             f"({','.join(c.candidate_categories) or '-'})")
        return "\n".join(lines)


def shadow_report(store: Store | MemoryStore, candidate: str, since: datetime | None = None,
                  until: datetime | None = None, sample: int = 20) -> ShadowReport:
    """The candidate's shadow decisions against the champion's, over [since, until)."""
    rows = shadow_store(store).shadow_decisions(candidate, since=since, until=until)
    champions = store.log.get_many(sorted({r.champion_decision_id for r in rows}))

    def champion_categories(r: ShadowDecision) -> tuple[str, ...]:
        found = champions.get(r.champion_decision_id)
        return found.categories if found is not None else ()

    agreed = sum(1 for r in rows if r.decision.action is r.champion_action)
    low, high = wilson_interval(agreed, len(rows))
    changed = [r for r in rows if r.decision.action is not r.champion_action]
    changed.sort(key=lambda r: hashlib.sha256(r.decision.item_id.encode()).hexdigest())
    categories: Counter[str] = Counter()
    champion_for: Counter[str] = Counter()
    candidate_for: Counter[str] = Counter()
    for r in rows:
        if r.champion_action is not Action.allow:
            champion_for.update(set(champion_categories(r)))
        if r.decision.action is not Action.allow:
            candidate_for.update(set(r.decision.categories))
    categories.update(champion_for)
    categories.update(candidate_for)
    by_category = [_delta("category", c, len(rows), champion_for[c], candidate_for[c]) for c in sorted(categories)]
    return ShadowReport(
        candidate=candidate, since=since, until=until, items=len(rows), agreed=agreed,
        agreement=agreed / len(rows) if rows else None, agreement_low=low, agreement_high=high,
        overall=_groups("overall", ((r, "all") for r in rows))[0] if rows else None,
        by_surface=_groups("surface", ((r, r.decision.surface) for r in rows)),
        by_country=_groups("country", ((r, r.decision.country or "none") for r in rows)),
        by_category=by_category,
        transitions=dict(sorted(Counter(f"{r.champion_action.value}->{r.decision.action.value}"
                                        for r in rows).items())),
        changed=len(changed),
        sample=[ChangedItem(item_id=r.decision.item_id, surface=r.decision.surface, country=r.decision.country,
                            champion_decision_id=r.champion_decision_id, champion_action=r.champion_action,
                            champion_categories=champion_categories(r), candidate_action=r.decision.action,
                            candidate_categories=r.decision.categories) for r in changed[:sample]],
    )


def _groups(group: str, keyed: Iterable[tuple[ShadowDecision, str]]) -> list[GroupDelta]:
    members: dict[str, list[ShadowDecision]] = defaultdict(list)
    for r, value in keyed:
        members[value].append(r)
    return [_delta(group, value, len(rs), sum(r.champion_action is not Action.allow for r in rs),
                   sum(r.decision.action is not Action.allow for r in rs)) for value, rs in sorted(members.items())]


def _delta(group: str, value: str, items: int, champion: int, candidate: int) -> GroupDelta:
    a, b = (champion / items, candidate / items) if items else (0.0, 0.0)
    return GroupDelta(group=group, value=value, items=items, champion_actioned=champion, candidate_actioned=candidate,
                      champion_rate=a, candidate_rate=b, delta=b - a)
