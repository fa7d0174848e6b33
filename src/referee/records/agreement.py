"""How much reviewers agree, and how often automation was right, from the review records.

- ``cohen_kappa(a, b)``: two raters' labels of the same units,
  ``kappa = (p_o - p_e) / (1 - p_e)`` with ``p_o`` the observed agreement and ``p_e`` the
  agreement expected from each rater's label frequencies (1 when both always give the
  same one label).
- ``krippendorff_alpha(units)``: nominal alpha for any number of raters per unit
  (units with fewer than two labels are left out), ``1 - D_o / D_e``.
- ``wilson_interval(k, n)``: the Wilson score interval of a proportion (95 % by default).
- ``agreement(desk)``: from decisions reviewed twice by different people (a review and a
  QA double review), kappa of the action overall, per category (flagged for it or not) and
  per reviewer (their label against the other's), and alpha over every verdict.
- ``automated_precision(desk)``: per category, of the automated enforcement decisions
  (neither allow nor hold_for_review) that a person reviewed, the share whose category the
  reviewer kept, with its Wilson interval: the figure the transparency report quotes.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from referee.model import Action
from referee.records.review import ReviewDesk, VerdictRecord
from referee.stats import wilson_interval

__all__ = ["Agreement", "Precision", "agreement", "automated_precision", "cohen_kappa", "krippendorff_alpha",
           "wilson_interval"]


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa needs two label lists of one length; got {len(a)} and {len(b)}")
    n = len(a)
    if n == 0:
        return math.nan
    p_o = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if p_e == 1.0:
        return 1.0 if p_o == 1.0 else 0.0
    return (p_o - p_e) / (1.0 - p_e)


def krippendorff_alpha(units: Sequence[Sequence[Hashable]]) -> float:
    """Nominal Krippendorff's alpha; each unit is the labels its raters gave."""
    pairable = [list(u) for u in units if len(u) >= 2]
    totals: Counter[Hashable] = Counter()
    disagree = 0.0
    for u in pairable:
        counts = Counter(u)
        totals.update(counts)
        m = len(u)
        disagree += sum(c * (m - c) for c in counts.values()) / (m - 1)
    n = sum(totals.values())
    if n <= 1:
        return math.nan
    expected = sum(totals[k] * (n - totals[k]) for k in totals) / (n - 1)
    if expected == 0:
        return 1.0
    return 1.0 - disagree / expected


@dataclass(frozen=True)
class Agreement:
    pairs: int
    kappa: float
    alpha: float
    per_category: dict[str, float] = field(default_factory=dict)
    per_reviewer: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Precision:
    category: str
    reviewed: int
    kept: int
    precision: float
    low: float
    high: float


def _label(v: VerdictRecord) -> str:
    return v.action.value if v.action is not None else "none"


def _labelled(desk: ReviewDesk, since: float | None) -> dict[str, list[VerdictRecord]]:
    by_decision: dict[str, list[VerdictRecord]] = defaultdict(list)
    for v in desk.verdicts(since=since):
        if v.verdict != "escalate" and v.kind in ("review", "qa"):
            by_decision[v.decision_id].append(v)
    return by_decision


def agreement(desk: ReviewDesk, since: float | None = None) -> Agreement:
    by_decision = _labelled(desk, since)
    pairs: list[tuple[VerdictRecord, VerdictRecord]] = []
    for vs in by_decision.values():
        first = vs[0]
        other = next((v for v in vs[1:] if v.reviewer_id != first.reviewer_id), None)
        if other is not None:
            pairs.append((first, other))
    kappa = cohen_kappa([_label(a) for a, _ in pairs], [_label(b) for _, b in pairs])
    categories = sorted({c for a, b in pairs for c in (*a.categories, *b.categories)})
    per_category = {
        c: cohen_kappa([c in a.categories for a, _ in pairs], [c in b.categories for _, b in pairs])
        for c in categories
    }
    mine: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for a, b in pairs:
        for me, them in ((a, b), (b, a)):
            mine[me.reviewer_id][0].append(_label(me))
            mine[me.reviewer_id][1].append(_label(them))
    per_reviewer = {r: cohen_kappa(x, y) for r, (x, y) in sorted(mine.items())}
    alpha = krippendorff_alpha([[_label(v) for v in vs] for vs in by_decision.values()])
    return Agreement(len(pairs), kappa, alpha, per_category, per_reviewer)


def automated_precision(desk: ReviewDesk, since: float | None = None) -> list[Precision]:
    by_decision = _labelled(desk, since)
    reviewed = desk.store.log.get_many(list(by_decision))
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for decision_id, vs in by_decision.items():
        d = reviewed.get(decision_id)
        if d is None or d.source != "automated" or d.action in (Action.allow, Action.hold_for_review):
            continue
        verdict = vs[0]  # the first person's look at it
        for c in d.categories:
            counts[c][0] += 1
            counts[c][1] += int(c in verdict.categories and verdict.action is not Action.allow)
    out = []
    for c, (n, kept) in sorted(counts.items()):
        low, high = wilson_interval(kept, n)
        out.append(Precision(c, n, kept, kept / n, low, high))
    return out
