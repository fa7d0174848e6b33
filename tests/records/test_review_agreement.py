"""Agreement: Cohen's kappa on a hand-computed example, Krippendorff's alpha, Wilson intervals,
and kappa/precision computed from the review records."""

from __future__ import annotations

import math

import pytest

from referee.model import Action
from referee.records.agreement import agreement, automated_precision, cohen_kappa, krippendorff_alpha, wilson_interval
from referee.records.review import ReviewDesk, Verdict
from referee.store import Store
from tests.records import test_review as base
from tests.records.test_review import automated, make_item, put

clock, desk, pg_url, policy, store, url = base.clock, base.desk, base.pg_url, base.policy, base.store, base.url


def test_cohen_kappa_on_a_hand_computed_example() -> None:
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15.
    # p_o = 35/50 = 0.7; A says yes 25/50, B 30/50: p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2/0.5 = 0.4
    a = ["y"] * 20 + ["y"] * 5 + ["n"] * 10 + ["n"] * 15
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(["x", "x"], ["x", "x"]) == 1.0
    assert math.isnan(cohen_kappa([], []))
    with pytest.raises(ValueError, match="one length"):
        cohen_kappa(["x"], [])


def test_krippendorff_alpha_nominal() -> None:
    # units (a,a) (a,b) (b,b): n = 6 values, 3 a and 3 b. Observed: only unit 2 disagrees,
    # 1*1 + 1*1 over (m - 1) = 1 -> 2. Expected: (3*3 + 3*3) / (n - 1) = 3.6. alpha = 1 - 2/3.6
    assert krippendorff_alpha([["a", "a"], ["a", "b"], ["b", "b"]]) == pytest.approx(1 - 2 / 3.6)
    assert krippendorff_alpha([["a", "a", "a"], ["b", "b"], ["c"]]) == 1.0  # the lone label is not pairable


def test_wilson_interval() -> None:
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def review(desk: ReviewDesk, reviewer: str, verdict: Verdict) -> None:
    for q in ("general", "eu"):
        task = desk.claim(reviewer, q)
        if task is not None:
            desk.submit(task.task_id, reviewer, verdict)
            return
    raise AssertionError(f"nothing for {reviewer}")


def test_agreement_and_precision_from_double_reviewed_decisions(desk: ReviewDesk, store: Store) -> None:
    # four automated removals, each reviewed by alice and double-reviewed by bob
    outcomes = [("uphold", "uphold"), ("uphold", "overturn"), ("overturn", "overturn"), ("uphold", "uphold")]
    for n, (a, b) in enumerate(outcomes):
        it = make_item(n)
        d = put(store, it, automated(it, action=Action.remove, score=0.9 - n / 100))
        desk.enqueue(d, slot=0)
        desk.enqueue(d, kind="qa", slot=1)
        first = desk.claim("alice", "general")
        assert first is not None and first.decision_id == d.decision_id
        desk.submit(first.task_id, "alice", Verdict(kind=a))  # type: ignore[arg-type]
        second = desk.claim("bob", "general")
        assert second is not None and second.decision_id == d.decision_id
        desk.submit(second.task_id, "bob", Verdict(kind=b))  # type: ignore[arg-type]
    result = agreement(desk)
    # labels: alice remove, remove, allow, remove; bob remove, allow, allow, remove
    expected = cohen_kappa(["remove", "remove", "allow", "remove"], ["remove", "allow", "allow", "remove"])
    assert result.pairs == 4 and result.kappa == pytest.approx(expected) == pytest.approx(0.5)
    assert result.per_category["hate"] == pytest.approx(0.5)
    assert result.per_reviewer == {"alice": pytest.approx(0.5), "bob": pytest.approx(0.5)}
    (hate,) = automated_precision(desk)
    assert (hate.category, hate.reviewed, hate.kept, hate.precision) == ("hate", 4, 3, 0.75)
    assert hate.low < 0.75 < hate.high
    assert len(desk.tasks("senior")) == 1  # the one disagreement went to a senior reviewer
