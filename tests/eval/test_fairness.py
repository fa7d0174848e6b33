"""Jigsaw bias metrics on a six-row example computed by hand."""

from __future__ import annotations

import math

import pytest

from referee.eval.fairness import bias_report, power_mean

#   y   score  group
ROWS = [
    (1, 0.9, ("A",)),
    (0, 0.8, ("A",)),
    (1, 0.7, ("B",)),
    (0, 0.2, ("B",)),
    (1, 0.6, ()),
    (0, 0.3, ()),
]


def test_bias_report_by_hand() -> None:
    y, s, g = zip(*ROWS)
    r = bias_report(y, s, g, threshold=0.5)
    a, b = r["groups"]["A"], r["groups"]["B"]
    # Within each group the positive outscores the negative.
    assert a["subgroup_auc"] == 1.0 and b["subgroup_auc"] == 1.0
    # BPSN A: background positives 0.7, 0.6 vs A's negative 0.8 -> never ranked above.
    assert a["bpsn_auc"] == 0.0
    # BPSN B: background positives 0.9, 0.6 vs B's negative 0.2.
    assert b["bpsn_auc"] == 1.0
    # BNSP A: A's positive 0.9 vs background negatives 0.2, 0.3.
    assert a["bnsp_auc"] == 1.0
    # BNSP B: B's positive 0.7 vs background negatives 0.8, 0.3 -> one of two pairs.
    assert b["bnsp_auc"] == 0.5
    # Overall: positives 0.9, 0.7, 0.6 vs negatives 0.8, 0.2, 0.3 -> 7 of 9 pairs.
    assert r["overall_auc"] == pytest.approx(7 / 9)
    means = r["generalised_means"]
    assert means["subgroup_auc"] == 1.0
    assert means["bpsn_auc"] == 0.0  # a zero AUC drives a p=-5 mean to zero
    assert means["bnsp_auc"] == pytest.approx(((1 + 0.5**-5) / 2) ** (-1 / 5))
    assert r["final_bias_score"] == pytest.approx(0.25 * 7 / 9 + 0.25 * (1 + 0 + 16.5 ** -0.2))
    assert (a["fpr"], a["fnr"], b["fpr"], b["fnr"]) == (1.0, 0.0, 0.0, 0.0)
    assert a["n"] == 2 and a["positives"] == 1 and a["small"]


def test_power_mean() -> None:
    assert power_mean([0.8, 0.8]) == pytest.approx(0.8)
    assert power_mean([0.9, 0.6]) < (0.9 + 0.6) / 2  # leans towards the worst group
    assert power_mean([]) is None
    assert math.isclose(power_mean([1.0, 0.5], p=1.0) or 0, 0.75)


def test_single_class_group_has_null_auc() -> None:
    r = bias_report([1, 1, 0], [0.9, 0.8, 0.1], [("A",), ("A",), ()], threshold=0.5)
    assert r["groups"]["A"]["subgroup_auc"] is None
    assert r["groups"]["A"]["bnsp_auc"] == 1.0
    assert r["groups"]["A"]["fpr"] is None
