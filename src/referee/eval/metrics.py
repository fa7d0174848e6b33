"""Classification metrics with bootstrap confidence intervals.

A detector gives each row a score per category; a dataset gives each row a
label per category that may be unknown. For every category we keep only the
rows whose label is known (an unknown is never a negative), then compute
ranking metrics (AUPRC, ROC-AUC), metrics at the operating threshold
(precision, recall, F1, FPR) and calibration (Brier, ECE).

Confidence intervals come from a seeded bootstrap over rows. To make a
thousand resamples affordable on 70k rows, every metric is computed from
per-row *weights* (how often the resample drew the row) on data sorted once
by score, so a resample is a weighted cumulative sum instead of a re-sort.
With all weights 1 the formulas are exactly scikit-learn's; the tests hold
them to that. The same weights drive the paired comparison in ``compare``:
two detectors scored on one resample of the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Metrics where a larger value is better; the rest (FPR, Brier, ECE) are errors.
HIGHER_IS_BETTER = {"auprc": True, "roc_auc": True, "precision": True, "recall": True, "f1": True,
                    "fpr": False, "brier": False, "ece": False}
METRICS = tuple(HIGHER_IS_BETTER)
RANKING = ("auprc", "roc_auc")
ECE_BINS = 10

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Prepared:
    """One binary problem, sorted by descending score with ties grouped.

    ``starts`` are the first positions of each distinct score, so per-group
    sums (``np.add.reduceat``) give the counts at each candidate threshold.
    ``order`` maps sorted positions back to the caller's row indices.
    """

    y: NDArray[np.int8]
    s: Floats
    order: NDArray[np.intp]
    starts: NDArray[np.intp]
    bins: NDArray[np.intp]

    @classmethod
    def build(cls, y: Sequence[int] | NDArray[Any], s: Sequence[float] | NDArray[Any]) -> "Prepared":
        y_arr = np.asarray(y, dtype=np.int8)
        s_arr = np.asarray(s, dtype=np.float64)
        order = np.argsort(-s_arr, kind="stable")
        s_sorted = s_arr[order]
        if len(s_sorted):
            starts = np.flatnonzero(np.r_[True, np.diff(s_sorted) != 0])
        else:
            starts = np.zeros(0, dtype=np.intp)
        bins = np.minimum((np.clip(s_sorted, 0, 1) * ECE_BINS).astype(np.intp), ECE_BINS - 1)
        return cls(y=y_arr[order], s=s_sorted, order=order, starts=starts, bins=bins)

    @property
    def n(self) -> int:
        return len(self.y)


def _safe_div(a: Floats, b: Floats) -> Floats:
    with np.errstate(divide="ignore", invalid="ignore"):
        out: Floats = np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)
    return out


def weighted_metrics(p: Prepared, w: Floats, threshold: float) -> dict[str, Floats]:
    """Every metric for each row of the weight matrix ``w`` (shape B x n, sorted order).

    Returns arrays of length B; NaN where a metric is undefined for that
    resample (no positives, no negatives, nothing predicted positive).
    """
    y = p.y.astype(np.float64)
    wp = w * y
    wn = w - wp
    if p.n == 0:
        nan = np.full(w.shape[0], np.nan)
        return {m: nan for m in METRICS}
    if len(p.starts) == p.n:  # no tied scores: every row is its own threshold
        tp_g, fp_g = wp, wn
    else:
        tp_g = np.add.reduceat(wp, p.starts, axis=1)
        fp_g = np.add.reduceat(wn, p.starts, axis=1)
    tp = np.cumsum(tp_g, axis=1)
    fp = np.cumsum(fp_g, axis=1)
    pos = tp[:, -1]
    neg = fp[:, -1]
    # AUPRC as scikit-learn's average_precision_score: sum of precision x recall step.
    precision_k = _safe_div(tp, tp + fp)
    recall_k = _safe_div(tp, pos[:, None])
    d_recall = np.diff(np.concatenate([np.zeros((w.shape[0], 1)), recall_k], axis=1), axis=1)
    auprc = np.nansum(d_recall * np.nan_to_num(precision_k), axis=1)
    auprc = np.where(pos > 0, auprc, np.nan)
    # ROC-AUC as Mann-Whitney U: each negative counts the positives ranked above it, ties half.
    tp_before = tp - tp_g
    auc_num = np.sum(fp_g * (tp_before + 0.5 * tp_g), axis=1)
    roc_auc = _safe_div(auc_num, pos * neg)
    # At the operating threshold: predicted positive = score >= threshold.
    k = int(np.count_nonzero(p.s >= threshold))  # scores are sorted: the flagged rows are a prefix
    tp_t = wp[:, :k].sum(axis=1)
    fp_t = wn[:, :k].sum(axis=1)
    fn_t = pos - tp_t
    precision = _safe_div(tp_t, tp_t + fp_t)
    recall = _safe_div(tp_t, pos)
    f1 = _safe_div(2 * tp_t, 2 * tp_t + fp_t + fn_t)
    fpr = _safe_div(fp_t, neg)
    total = w.sum(axis=1)
    brier = _safe_div((w * (p.s - y) ** 2).sum(axis=1), total)
    # Expected calibration error over ten equal-width score bins, weighted by bin size.
    onehot = np.zeros((p.n, ECE_BINS))
    onehot[np.arange(p.n), p.bins] = 1.0
    n_b = w @ onehot
    y_b = wp @ onehot
    s_b = (w * p.s) @ onehot
    gap = np.abs(np.nan_to_num(_safe_div(y_b, n_b)) - np.nan_to_num(_safe_div(s_b, n_b)))
    ece = _safe_div((n_b * gap).sum(axis=1), total)
    return {"auprc": auprc, "roc_auc": roc_auc, "precision": precision, "recall": recall, "f1": f1,
            "fpr": fpr, "brier": brier, "ece": ece}


def bootstrap_weights(n: int, n_boot: int, seed: int, chunk: int = 64) -> Iterator[Floats]:
    """Resample weights (counts of each row in a resample), B x n, in chunks to bound memory.

    The same seed and n always give the same resamples: that is what makes two
    runs' intervals, and a paired comparison, reproducible.
    """
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(b, n)) if n else np.zeros((b, 0), dtype=np.intp)
        w = np.zeros((b, n))
        for i in range(b):
            w[i] = np.bincount(idx[i], minlength=n)
        done += b
        yield w


def _ci(values: Floats, level: float = 0.95) -> tuple[float | None, float | None]:
    finite = values[np.isfinite(values)]
    if len(finite) < 2:
        return None, None
    lo, hi = np.quantile(finite, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def _num(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def threshold_for_precision(y: NDArray[Any], s: NDArray[Any], target: float) -> dict[str, float | None]:
    """The lowest threshold whose precision reaches ``target``, and the recall it keeps.

    Lowest, because among thresholds that are precise enough it flags the most.
    """
    p = Prepared.build(y, s)
    if p.n == 0 or p.y.sum() == 0:
        return {"target_precision": target, "threshold": None, "recall": None}
    tp = np.cumsum(np.add.reduceat(p.y.astype(float), p.starts))
    fp = np.cumsum(np.add.reduceat(1.0 - p.y, p.starts))
    prec = tp / (tp + fp)
    ok = np.flatnonzero(prec >= target)
    if len(ok) == 0:
        return {"target_precision": target, "threshold": None, "recall": None}
    k = ok[-1]
    return {"target_precision": target, "threshold": float(p.s[p.starts[k]]), "recall": float(tp[k] / tp[-1])}


def binary_report(
    y: Sequence[int] | NDArray[Any],
    s: Sequence[float] | NDArray[Any],
    threshold: float,
    n_boot: int = 1000,
    seed: int = 13,
    target_precision: float = 0.9,
    level: float = 0.95,
) -> dict[str, Any]:
    """All metrics for one binary view, each as ``{"value", "lo", "hi"}``.

    Ranking metrics need both classes; with one class present they are null
    and ``note`` says why, instead of raising like scikit-learn does.
    """
    y_arr = np.asarray(y, dtype=np.int8)
    s_arr = np.asarray(s, dtype=np.float64)
    p = Prepared.build(y_arr, s_arr)
    n_pos = int(y_arr.sum())
    out: dict[str, Any] = {"n": p.n, "positives": n_pos, "negatives": p.n - n_pos, "threshold": threshold}
    point = weighted_metrics(p, np.ones((1, p.n)), threshold)
    boots: dict[str, list[Floats]] = {m: [] for m in METRICS}
    if n_boot > 0 and p.n > 1:
        for w in bootstrap_weights(p.n, n_boot, seed):
            for m, v in weighted_metrics(p, w[:, p.order], threshold).items():
                boots[m].append(v)
    single_class = n_pos == 0 or n_pos == p.n
    for m in METRICS:
        lo, hi = _ci(np.concatenate(boots[m])) if boots[m] else (None, None)
        value = None if single_class and m in RANKING else _num(point[m][0])
        out[m] = {"value": value, "lo": _num(lo) if value is not None else None,
                  "hi": _num(hi) if value is not None else None}
    if n_pos == 0 or n_pos == p.n:
        only = "positive" if n_pos else "negative"
        out["note"] = (f"only {only}s labelled: AUPRC and ROC-AUC undefined" if p.n else "no rows with a known label")
    out["at_target_precision"] = (threshold_for_precision(y_arr, s_arr, target_precision) if not single_class
                                  else {"target_precision": target_precision, "threshold": None, "recall": None})
    return out


@dataclass(frozen=True)
class Labelled:
    """Scores and labels of a dataset, per category; labels use -1 for unknown."""

    ids: list[str]
    categories: list[str]
    scores: dict[str, Floats]
    labels: dict[str, NDArray[np.int8]]
    any_labels: NDArray[np.int8]

    def known(self, category: str) -> NDArray[np.bool_]:
        return self.labels[category] >= 0

    def any_scores(self) -> Floats:
        if not self.categories:
            return np.zeros(len(self.ids))
        top: Floats = np.max(np.vstack([self.scores[c] for c in self.categories]), axis=0)
        return top


def evaluate(
    data: Labelled,
    thresholds: Mapping[str, float],
    n_boot: int = 1000,
    seed: int = 13,
    target_precision: float = 0.9,
) -> dict[str, Any]:
    """Per-category, macro, micro and any-unsafe metrics.

    Macro is the mean over categories where the metric is defined (their
    number is reported). Micro pools every (row, category) pair with a known
    label, each pair judged at its own category's threshold; its bootstrap
    resamples rows, keeping a row's pairs together.
    """
    per_category: dict[str, Any] = {}
    for cat in data.categories:
        mask = data.known(cat)
        per_category[cat] = binary_report(data.labels[cat][mask], data.scores[cat][mask],
                                          thresholds.get(cat, 0.5), n_boot, seed, target_precision)
    macro: dict[str, Any] = {}
    for m in METRICS:
        vals = [r[m]["value"] for r in per_category.values() if r[m]["value"] is not None]
        macro[m] = {"value": _num(float(np.mean(vals))) if vals else None, "categories": len(vals)}
    micro = _micro(data, thresholds, n_boot, seed)
    any_mask = data.any_labels >= 0
    any_threshold = min(thresholds.values()) if thresholds else 0.5
    any_view = binary_report(data.any_labels[any_mask], data.any_scores()[any_mask], any_threshold, n_boot, seed,
                             target_precision)
    any_view["definition"] = ("label = source 'unsafe' if given, else 1 if any category is 1, 0 if all are 0, "
                              "excluded otherwise; score = max over categories")
    return {"per_category": per_category, "macro": macro, "micro": micro, "any_unsafe": any_view}


def _micro(data: Labelled, thresholds: Mapping[str, float], n_boot: int, seed: int) -> dict[str, Any]:
    ys, ss, rows, thr = [], [], [], []
    for cat in data.categories:
        mask = data.known(cat)
        ys.append(data.labels[cat][mask])
        ss.append(data.scores[cat][mask])
        rows.append(np.flatnonzero(mask))
        thr.append(np.full(int(mask.sum()), thresholds.get(cat, 0.5)))
    if not ys or not any(len(y) for y in ys):
        return {}  # no category is labelled on any row (e.g. an 'unsafe'-only set): only the any-unsafe view
    y, s, row, t = np.concatenate(ys), np.concatenate(ss), np.concatenate(rows), np.concatenate(thr)
    # Shift each pair's score by its threshold so one cut at 0.5 applies every category's own threshold.
    shifted = np.clip(s - t + 0.5, 0.0, 1.0)
    p = Prepared.build(y, s)
    p_thr = Prepared.build(y, shifted)
    n = len(data.ids)
    point = weighted_metrics(p, np.ones((1, p.n)), 0.5)
    point_thr = weighted_metrics(p_thr, np.ones((1, p.n)), 0.5)
    boots: dict[str, list[Floats]] = {m: [] for m in METRICS}
    if n_boot > 0 and p.n > 1:
        for w_rows in bootstrap_weights(n, n_boot, seed):
            w_pairs = w_rows[:, row]
            a = weighted_metrics(p, w_pairs[:, p.order], 0.5)
            b = weighted_metrics(p_thr, w_pairs[:, p_thr.order], 0.5)
            for m in METRICS:
                boots[m].append(a[m] if m in RANKING or m in ("brier", "ece") else b[m])
    out: dict[str, Any] = {"n": int(p.n), "positives": int(y.sum())}
    single_class = y.min() == y.max()
    if single_class:
        out["note"] = "only one class labelled: AUPRC and ROC-AUC undefined"
    for m in METRICS:
        value = point[m][0] if m in RANKING or m in ("brier", "ece") else point_thr[m][0]
        if single_class and m in RANKING:
            value = np.nan
        lo, hi = _ci(np.concatenate(boots[m])) if boots[m] else (None, None)
        known = _num(value) is not None
        out[m] = {"value": _num(value), "lo": _num(lo) if known else None, "hi": _num(hi) if known else None}
    return out
