"""Per-category quality numbers over labels where unknown is NaN.

Every dataset here labels only some categories (a spam corpus says nothing
about hate), so each metric masks unknown labels per category instead of
counting them as negatives.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def known(labels: np.ndarray, column: int) -> np.ndarray:
    mask: np.ndarray = ~np.isnan(labels[:, column])
    return mask


def auprc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision; NaN when one class is missing (the number would be meaningless)."""
    mask = ~np.isnan(labels)
    y, s = labels[mask], scores[mask]
    if y.size == 0 or y.min() == y.max():
        return math.nan
    return float(average_precision_score(y, s))


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    mask = ~np.isnan(labels)
    y, s = labels[mask], scores[mask]
    if y.size == 0 or y.min() == y.max():
        return math.nan
    return float(roc_auc_score(y, s))


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error with equal-width bins: the gap between "scored
    0.8" and "80 % of those violate", weighted by how many items land there."""
    mask = ~np.isnan(labels)
    p, y = probs[mask], labels[mask]
    if p.size == 0:
        return math.nan
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.sum() * abs(p[sel].mean() - y[sel].mean())
    return float(total / p.size)


def macro_auprc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean AUPRC over categories that have both classes; early stopping's target."""
    values = [auprc(scores[:, c], labels[:, c]) for c in range(labels.shape[1])]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def per_category(scores: np.ndarray, labels: np.ndarray, categories: list[str]) -> dict[str, dict[str, float | int]]:
    out: dict[str, dict[str, float | int]] = {}
    for c, name in enumerate(categories):
        y = labels[:, c]
        m = ~np.isnan(y)
        out[name] = {
            "n": int(m.sum()),
            "positives": int(np.nansum(y)),
            "auprc": _round(auprc(scores[:, c], y)),
            "roc_auc": _round(roc_auc(scores[:, c], y)),
        }
    return out


def _round(x: float) -> float:
    return x if math.isnan(x) else round(x, 4)
