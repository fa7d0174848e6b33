"""Calibration and operating thresholds, fitted on the dev split.

Method: per-category temperature scaling with a bias term (Platt scaling,
``p = sigmoid(a * logit + b)``). Why not plain temperature: training uses
``pos_weight`` for rare categories, which shifts every logit of that category
upward; a temperature alone cannot move the base rate back, a bias can. Why not
isotonic regression: several categories have tens of dev positives
(sexual_minors, self_harm prompts), where isotonic steps overfit and flatten
scores into ties that destroy ranking; two parameters per category cannot. The
map is monotone, so AUPRC and ROC-AUC are unchanged by calibration.

Calibrated scores mean "share of dev items with this score that violate"; the
dev mix of sources is not production traffic, so base rates there differ.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy.optimize import minimize


class Platt(BaseModel):
    model_config = ConfigDict(frozen=True)
    a: float = 1.0
    b: float = 0.0
    fitted: bool = False


class Threshold(BaseModel):
    """The operating point of one category and what it achieved on dev."""

    model_config = ConfigDict(frozen=True)
    threshold: float
    target_precision: float
    precision: float | None
    recall: float | None
    method: str


def sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(x, -40.0, 40.0)))
    return out


def fit_platt(logits: np.ndarray, labels: np.ndarray, l2: float = 1e-3, min_each: int = 3) -> Platt:
    """Fit ``a, b`` for one category on known labels (NaN = unknown, left out).

    A weak pull towards the identity (``l2``) keeps the fit sane when a
    category has a handful of positives; with fewer than ``min_each`` of
    either class the identity is kept and the card says so.
    """
    mask = ~np.isnan(labels)
    z, y = logits[mask].astype(np.float64), labels[mask].astype(np.float64)
    if y.size == 0 or y.sum() < min_each or (1 - y).sum() < min_each:
        return Platt()

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = params
        t = a * z + b
        # log(1 + e^t) - y t, written stably
        nll = np.logaddexp(0.0, t) - y * t
        g = sigmoid(t) - y
        value = nll.mean() + l2 * ((a - 1.0) ** 2 + b**2)
        grad = np.array([(g * z).mean() + 2 * l2 * (a - 1.0), g.mean() + 2 * l2 * b])
        return float(value), grad

    res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=[(1e-3, 100.0), (-50.0, 50.0)])
    a, b = (float(v) for v in res.x)
    return Platt(a=a, b=b, fitted=True)


def apply_platt(logits: np.ndarray, params: list[Platt]) -> np.ndarray:
    """Calibrated probabilities, one column per category."""
    a = np.array([p.a for p in params], dtype=np.float64)
    b = np.array([p.b for p in params], dtype=np.float64)
    return sigmoid(logits.astype(np.float64) * a + b).astype(np.float32)


def choose_threshold(probs: np.ndarray, labels: np.ndarray, target_precision: float = 0.9) -> Threshold:
    """Lowest threshold whose dev precision reaches the target (most recall at that
    precision). When no threshold reaches it, the best-F1 point is used and the
    method says so, so a policy author can see the target was not met."""
    mask = ~np.isnan(labels)
    p, y = probs[mask], labels[mask]
    if y.size == 0 or y.sum() == 0:
        return Threshold(threshold=0.5, target_precision=target_precision, precision=None, recall=None,
                         method="default (no dev positives)")
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    tp = np.cumsum(ys)
    k = np.arange(1, ys.size + 1)
    precision, recall = tp / k, tp / ys.sum()
    # Only cut between distinct scores.
    last_of_run = np.r_[ps[1:] != ps[:-1], True]
    ok = np.where(last_of_run & (precision >= target_precision))[0]
    if ok.size:
        i = int(ok[-1])
        method = f"precision>={target_precision:g} on dev"
    else:
        f1 = np.where(last_of_run, 2 * precision * recall / np.maximum(precision + recall, 1e-12), -1)
        i = int(np.argmax(f1))
        method = f"best F1 on dev (precision {target_precision:g} unreachable)"
    return Threshold(
        threshold=float(round(ps[i], 6)),
        target_precision=target_precision,
        precision=round(float(precision[i]), 4),
        recall=round(float(recall[i]), 4),
        method=method,
    )


def fit_all(logits: np.ndarray, labels: np.ndarray) -> list[Platt]:
    return [fit_platt(logits[:, c], labels[:, c]) for c in range(labels.shape[1])]

