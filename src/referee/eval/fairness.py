"""Unintended-bias metrics per identity group (Borkan et al. 2019, Jigsaw).

A detector that learned "mentions gay people" instead of "attacks gay people"
ranks benign mentions of the group above real abuse elsewhere. Three AUCs
per group expose that:

* subgroup AUC: only rows mentioning the group; low = it cannot separate
  abuse from benign talk about this group;
* BPSN (background positive, subgroup negative): benign rows of the group
  against abusive rows of everyone else; low = benign mentions of the group
  score too high (false positives concentrate on the group);
* BNSP (background negative, subgroup positive): abusive rows of the group
  against benign rows of everyone else; low = abuse of this group scores too
  low (misses concentrate on the group).

Each is summarised over groups by a generalised mean with p = -5, which sits
close to the worst group, and the final bias score is 0.25 x overall AUC +
0.25 x each of the three means. Per-group FPR and FNR at the operating
threshold say what the ranking means for decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

POWER = -5.0
#: Groups with fewer rows are still reported, but marked: their AUCs swing wildly.
SMALL_GROUP = 30


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    if len(y) == 0 or y.min() == y.max():
        return None
    return float(roc_auc_score(y, s))


def power_mean(values: Sequence[float], p: float = POWER) -> float | None:
    """Generalised mean; any zero drives a negative-power mean to zero."""
    vals = np.asarray([v for v in values if v is not None], dtype=float)
    if len(vals) == 0:
        return None
    if np.any(vals <= 0):
        return 0.0
    return float(np.mean(vals**p) ** (1.0 / p))


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def bias_report(
    y: Sequence[int] | np.ndarray,
    s: Sequence[float] | np.ndarray,
    groups: Sequence[Sequence[str]],
    threshold: float,
    min_rows: int = 1,
) -> dict[str, Any]:
    """Per-group bias AUCs and error rates, their power means and the final score.

    ``groups[i]`` lists the identity groups row ``i`` mentions (possibly none).
    """
    y_arr = np.asarray(y, dtype=int)
    s_arr = np.asarray(s, dtype=float)
    names = sorted({g for gs in groups for g in gs})
    flagged = s_arr >= threshold
    per_group: dict[str, dict[str, Any]] = {}
    for name in names:
        sub = np.array([name in gs for gs in groups], dtype=bool)
        n = int(sub.sum())
        if n < min_rows:
            continue
        bg = ~sub
        pos, neg = y_arr == 1, y_arr == 0
        bpsn = (bg & pos) | (sub & neg)
        bnsp = (bg & neg) | (sub & pos)
        per_group[name] = {
            "n": n,
            "positives": int((sub & pos).sum()),
            "subgroup_auc": _auc(y_arr[sub], s_arr[sub]),
            "bpsn_auc": _auc(y_arr[bpsn], s_arr[bpsn]),
            "bnsp_auc": _auc(y_arr[bnsp], s_arr[bnsp]),
            "fpr": _rate(int((sub & neg & flagged).sum()), int((sub & neg).sum())),
            "fnr": _rate(int((sub & pos & ~flagged).sum()), int((sub & pos).sum())),
            "small": n < SMALL_GROUP,
        }
    overall = _auc(y_arr, s_arr)
    means = {
        key: power_mean([g[key] for g in per_group.values() if g[key] is not None])
        for key in ("subgroup_auc", "bpsn_auc", "bnsp_auc")
    }
    final = None
    if overall is not None and all(v is not None for v in means.values()):
        final = 0.25 * overall + 0.25 * sum(v for v in means.values() if v is not None)
    return {
        "n": int(len(y_arr)),
        "threshold": threshold,
        "overall_auc": overall,
        "power": POWER,
        "generalised_means": means,
        "final_bias_score": final,
        "groups": per_group,
    }
