"""Metrics agree with scikit-learn, handle unknown labels and single-class views, and have seeded intervals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from referee.eval.metrics import Labelled, Prepared, binary_report, evaluate, threshold_for_precision, weighted_metrics


def _data(n: int, seed: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = rng.random(n) * 0.6 + 0.4 * y * rng.random(n)
    return y, (np.round(s, 1) if ties else s)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_point_metrics_equal_sklearn(seed: int, ties: bool) -> None:
    y, s = _data(300, seed, ties)
    r = binary_report(y, s, threshold=0.5, n_boot=0)
    pred = s >= 0.5
    assert r["auprc"]["value"] == pytest.approx(average_precision_score(y, s), abs=1e-6)
    assert r["roc_auc"]["value"] == pytest.approx(roc_auc_score(y, s), abs=1e-6)
    assert r["precision"]["value"] == pytest.approx(precision_score(y, pred), abs=1e-6)
    assert r["recall"]["value"] == pytest.approx(recall_score(y, pred), abs=1e-6)
    assert r["f1"]["value"] == pytest.approx(f1_score(y, pred), abs=1e-6)
    assert r["fpr"]["value"] == pytest.approx(((pred == 1) & (y == 0)).sum() / (y == 0).sum(), abs=1e-6)
    assert r["brier"]["value"] == pytest.approx(brier_score_loss(y, s), abs=1e-6)


def test_weighted_metrics_equal_sklearn_with_sample_weight() -> None:
    y, s = _data(200, 5, ties=True)
    w = np.random.default_rng(9).integers(0, 4, len(y)).astype(float)
    p = Prepared.build(y, s)
    r = weighted_metrics(p, w[p.order][None, :], 0.5)
    assert r["auprc"][0] == pytest.approx(average_precision_score(y, s, sample_weight=w))
    assert r["roc_auc"][0] == pytest.approx(roc_auc_score(y, s, sample_weight=w))
    assert r["brier"][0] == pytest.approx(brier_score_loss(y, s, sample_weight=w))


def test_ece_by_hand() -> None:
    # Bin [0.2,0.3): scores 0.2, 0.2 and labels 0, 1 -> gap |0.5 - 0.2| = 0.3, weight 2/4.
    # Bin [0.9,1.0]: scores 0.9, 0.9 and labels 1, 1 -> gap 0.1, weight 2/4.
    r = binary_report([0, 1, 1, 1], [0.2, 0.2, 0.9, 0.9], 0.5, n_boot=0)
    assert r["ece"]["value"] == pytest.approx(0.5 * 0.3 + 0.5 * 0.1)


def test_bootstrap_interval_is_seeded_and_contains_point() -> None:
    y, s = _data(400, 3, ties=False)
    a = binary_report(y, s, 0.5, n_boot=200, seed=7)
    b = binary_report(y, s, 0.5, n_boot=200, seed=7)
    c = binary_report(y, s, 0.5, n_boot=200, seed=8)
    assert a["auprc"] == b["auprc"]
    assert a["auprc"] != c["auprc"]
    assert a["auprc"]["lo"] < a["auprc"]["value"] < a["auprc"]["hi"]


def test_single_class_gives_null_ranking_metrics_with_a_reason() -> None:
    r = binary_report([1, 1, 1], [0.9, 0.2, 0.7], 0.5, n_boot=50)
    assert r["auprc"]["value"] is None and r["roc_auc"]["value"] is None
    assert "only positive" in r["note"]
    assert r["recall"]["value"] == pytest.approx(2 / 3)
    empty = binary_report([], [], 0.5, n_boot=10)
    assert empty["n"] == 0 and empty["auprc"]["value"] is None


def test_threshold_for_target_precision() -> None:
    y = np.array([1, 1, 0, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.1])
    # Precision at cut 0.8 is 1.0, at 0.6 it is 3/4: the lowest cut reaching 0.75 is 0.6.
    assert threshold_for_precision(y, s, 0.75) == {"target_precision": 0.75, "threshold": 0.6, "recall": 1.0}
    assert threshold_for_precision(y, s, 1.0)["threshold"] == 0.8
    assert threshold_for_precision(np.zeros(3), s[:3], 0.9)["threshold"] is None


def test_unknown_labels_are_excluded_not_negative() -> None:
    labels = {"hate": np.array([1, 0, -1, -1], dtype=np.int8), "spam": np.array([-1, -1, 1, 0], dtype=np.int8)}
    scores = {"hate": np.array([0.9, 0.1, 0.95, 0.95]), "spam": np.array([0.9, 0.9, 0.8, 0.2])}
    data = Labelled(ids=list("abcd"), categories=["hate", "spam"], scores=scores, labels=labels,
                    any_labels=np.array([1, -1, 1, -1], dtype=np.int8))
    out = evaluate(data, {"hate": 0.5, "spam": 0.5}, n_boot=0)
    # Rows c and d score 0.95 for hate but their hate label is unknown: hate stays perfect.
    assert out["per_category"]["hate"]["n"] == 2
    assert out["per_category"]["hate"]["fpr"]["value"] == 0.0
    assert out["per_category"]["hate"]["auprc"]["value"] == 1.0
    assert out["macro"]["auprc"] == {"value": 1.0, "categories": 2}
    assert out["micro"]["n"] == 4
    assert out["any_unsafe"]["n"] == 2 and "note" in out["any_unsafe"]


def test_micro_applies_each_categorys_threshold() -> None:
    labels = {"hate": np.array([1, 0], dtype=np.int8), "spam": np.array([1, 0], dtype=np.int8)}
    scores = {"hate": np.array([0.35, 0.2]), "spam": np.array([0.75, 0.6])}
    data = Labelled(ids=["a", "b"], categories=["hate", "spam"], scores=scores, labels=labels,
                    any_labels=np.array([1, 0], dtype=np.int8))
    out = evaluate(data, {"hate": 0.3, "spam": 0.7}, n_boot=0)
    assert out["micro"]["recall"]["value"] == 1.0 and out["micro"]["fpr"]["value"] == 0.0
