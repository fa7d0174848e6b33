"""The analyst's view: warnings, worst slices with intervals, sweeps, examples, policy actions."""

from __future__ import annotations

import numpy as np
import pytest

from referee.eval.analysis import analyse, wilson
from referee.eval.datasets import Row
from referee.policy import load_policy

from .conftest import REPO


def test_wilson_interval_is_sound_at_the_edges() -> None:
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and 0.2 < hi < 0.35
    lo, hi = wilson(10, 10)
    assert hi == 1.0 and 0.65 < lo < 0.8
    lo, hi = wilson(5, 10)
    assert lo < 0.5 < hi


def _rows() -> tuple[list[Row], dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    rows, hate = [], []
    for i in range(60):
        func = "derog" if i < 30 else "counter"
        y = 1 if func == "derog" else 0
        rows.append(Row(id=f"r{i}", text=f"text {i}", labels={"hate": y}, groups=("women",) if i % 2 else (),
                        meta={"functionality": func}))
        # derog: 20 of 30 missed (score 0.2); counter: 3 of 30 flagged (score 0.9)
        hate.append(0.2 if (y and i < 20) else 0.9 if y else (0.9 if i < 33 else 0.1))
    scores = {"hate": np.array(hate), "spam": np.zeros(60)}
    labels = {"hate": np.array([r.labels["hate"] for r in rows], dtype=np.int8), "spam": np.full(60, -1, np.int8)}
    return rows, scores, labels, labels["hate"].copy()


def test_worst_slices_come_first_with_intervals() -> None:
    rows, scores, labels, any_labels = _rows()
    a = analyse(rows, scores, {"hate": 0.5, "spam": 0.5}, labels, any_labels)
    top = a["worst_slices"][0]
    assert top["slice"] == "functionality=derog" and top["error"] == "FNR"
    assert top["errors"] == 20 and top["n"] == 30 and top["lo"] < top["rate"] < top["hi"]
    los = [s["lo"] for s in a["worst_slices"]]
    assert los == sorted(los, reverse=True)
    assert any(s["slice"] == "group=women" for s in a["worst_slices"])


def test_confusion_sweep_and_examples() -> None:
    rows, scores, labels, any_labels = _rows()
    a = analyse(rows, scores, {"hate": 0.5, "spam": 0.5}, labels, any_labels, examples=2)
    assert a["confusion"]["hate"] == {"tp": 10, "fp": 3, "fn": 20, "tn": 27, "threshold": 0.5}
    point = next(p for p in a["sweep"]["hate"] if p["threshold"] == 0.5)
    assert point["recall"] == pytest.approx(10 / 30, abs=1e-4) and point["fpr"] == pytest.approx(3 / 30, abs=1e-4)
    assert point["precision"] == pytest.approx(10 / 13, abs=1e-4)
    ex = a["examples"]["hate"]
    assert len(ex["misses"]) == 2 and all(e["score"] == 0.2 for e in ex["misses"])
    assert ex["false_flags"][0]["score"] == 0.9 and ex["false_flags"][0]["text"].startswith("text 3")


def test_below_chance_detector_is_flagged() -> None:
    rows, scores, labels, any_labels = _rows()
    scores["hate"] = 1.0 - (labels["hate"] * 0.8 + 0.1)  # perfectly inverted
    a = analyse(rows, scores, {"hate": 0.5, "spam": 0.5}, labels, any_labels, detector="words")
    assert any("words ranks hate at or below chance" in w for w in a["warnings"])


def test_positives_only_set_says_precision_is_meaningless() -> None:
    rows = [Row(id=str(i), text="t", labels={"spam": 1}) for i in range(20)]
    labels = {"spam": np.ones(20, dtype=np.int8)}
    a = analyse(rows, {"spam": np.linspace(0, 1, 20)}, {"spam": 0.5}, labels, np.ones(20, dtype=np.int8))
    assert any("only positives" in w and "recall" in w for w in a["warnings"])
    assert all(p["precision"] is None for p in a["sweep"]["spam"])


def test_policy_actions_shares() -> None:
    pol = load_policy(REPO / "policies" / "default.yaml")
    rows = [Row(id=str(i), text="t", labels={"violence": int(i < 5)}) for i in range(10)]
    scores = {c: np.zeros(10) for c in pol.categories}
    scores["violence"] = np.array([0.95] * 3 + [0.0] * 7)  # 3 over comment.hate.remove's 0.9
    labels = {c: np.full(10, -1, np.int8) for c in pol.categories}
    a = analyse(rows, scores, {c: 0.5 for c in pol.categories}, labels, np.full(10, -1, np.int8), policy=pol)
    assert a["policy_actions"]["all"]["n"] == 10
    assert a["policy_actions"]["all"]["remove"] == pytest.approx(0.3)
    assert a["policy_actions"]["all"]["allow"] == pytest.approx(0.7)
