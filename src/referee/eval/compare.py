"""Is the candidate really better (or worse) than the baseline?

Two runs on the same dataset differ by noise as well as by skill. A paired
bootstrap draws the same resample of rows for both runs and looks at the
*difference* of their metrics, which cancels the noise that both share (a
hard resample is hard for both). The 95% interval of that difference is what
``compare`` prints and what ``gate`` judges.

Both result files carry their per-row scores and labels (``predictions``),
so a comparison needs nothing but the two JSON files.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from referee.errors import InputError
from referee.eval.metrics import HIGHER_IS_BETTER, METRICS, Prepared, bootstrap_weights, weighted_metrics

ANY = "any_unsafe"
MACRO = "macro"


def _views(result: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """view name -> (labels with -1 unknown, scores, threshold), aligned to result ids."""
    pred = result.get("predictions")
    if not pred:
        raise InputError("result has no per-row predictions; re-run `referee eval run` (it stores them)",
                         where=result.get("_path"))
    views: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    thresholds = result.get("thresholds", {})
    for cat in pred["categories"]:
        views[cat] = (np.asarray(pred["labels"][cat], dtype=int), np.asarray(pred["scores"][cat], dtype=float),
                      float(thresholds.get(cat, 0.5)))
    if pred["categories"]:
        any_s = np.max(np.vstack([pred["scores"][c] for c in pred["categories"]]), axis=0)
        any_t = min(thresholds.values()) if thresholds else 0.5
        views[ANY] = (np.asarray(pred["any"], dtype=int), any_s, float(any_t))
    return views


def _align(a: dict[str, Any], b: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    ids_a, ids_b = a["predictions"]["ids"], b["predictions"]["ids"]
    if ids_a == ids_b:
        idx = np.arange(len(ids_a))
        return idx, idx
    pos_b = {rid: i for i, rid in enumerate(ids_b)}
    common = [(i, pos_b[rid]) for i, rid in enumerate(ids_a) if rid in pos_b]
    if not common:
        raise InputError("the two results share no row ids; compare runs on the same dataset")
    return np.array([c[0] for c in common]), np.array([c[1] for c in common])


def compare(
    baseline: dict[str, Any],
    candidate: dict[str, Any],
    metrics: tuple[str, ...] = ("auprc", "roc_auc", "f1", "recall", "fpr"),
    n_boot: int = 1000,
    seed: int = 13,
    level: float = 0.95,
) -> dict[str, Any]:
    """Per view and metric: baseline, candidate, delta (candidate - baseline) with a paired CI.

    Only rows present in both results and labels known in the baseline count.
    ``macro`` averages each resample's per-category metrics, over categories
    where both runs have a value.
    """
    for m in metrics:
        if m not in HIGHER_IS_BETTER:
            raise InputError(f"Unknown metric {m!r}. Available: {', '.join(METRICS)}")
    ia, ib = _align(baseline, candidate)
    va, vb = _views(baseline), _views(candidate)
    n = len(ia)
    out: dict[str, Any] = {
        "baseline": _ident(baseline), "candidate": _ident(candidate), "rows": n, "bootstrap": n_boot, "seed": seed,
        "same_dataset": baseline.get("dataset", {}).get("sha256") == candidate.get("dataset", {}).get("sha256"),
        "views": {},
    }
    shared_views = [v for v in va if v in vb]
    points: dict[str, dict[str, tuple[float, float]]] = {}
    boots: dict[str, dict[str, list[np.ndarray]]] = {}
    prepared = {}
    for view in shared_views:
        y_all, sa_all, ta = va[view]
        _, sb_all, tb = vb[view]
        y, sa, sb = y_all[ia], sa_all[ia], sb_all[ib]
        known = y >= 0
        pa, pb = Prepared.build(y[known], sa[known]), Prepared.build(y[known], sb[known])
        prepared[view] = (known, pa, pb, ta, tb)
        ma = weighted_metrics(pa, np.ones((1, pa.n)), ta)
        mb = weighted_metrics(pb, np.ones((1, pb.n)), tb)
        points[view] = {m: (float(ma[m][0]), float(mb[m][0])) for m in metrics}
        boots[view] = {m: [] for m in metrics}
    if n_boot > 0 and n > 1:
        for w in bootstrap_weights(n, n_boot, seed):
            for view, (known, pa, pb, ta, tb) in prepared.items():
                wk = w[:, known]
                ma = weighted_metrics(pa, wk[:, pa.order], ta)
                mb = weighted_metrics(pb, wk[:, pb.order], tb)
                for m in metrics:
                    boots[view][m].append(np.vstack([ma[m], mb[m]]))
    cats = [v for v in shared_views if v != ANY]
    for view in [*shared_views, MACRO]:
        out["views"][view] = {}
        for m in metrics:
            if view == MACRO:
                entry = _macro(points, boots, cats, m, level)
            else:
                a, b = points[view][m]
                draws = np.hstack(boots[view][m]) if boots[view][m] else np.zeros((2, 0))
                entry = _entry(a, b, draws, level)
            if entry is not None:
                entry["higher_is_better"] = HIGHER_IS_BETTER[m]
                out["views"][view][m] = entry
    return out


def _entry(a: float, b: float, draws: np.ndarray, level: float) -> dict[str, Any] | None:
    if not (np.isfinite(a) and np.isfinite(b)):
        return None
    delta = draws[1] - draws[0]
    delta = delta[np.isfinite(delta)]
    lo = hi = None
    if len(delta) > 1:
        lo, hi = (float(x) for x in np.quantile(delta, [(1 - level) / 2, 1 - (1 - level) / 2]))
    return {"baseline": a, "candidate": b, "delta": b - a, "lo": lo, "hi": hi,
            "p_worse": float(np.mean(delta < 0)) if len(delta) else None}


def _macro(points: dict[str, dict[str, tuple[float, float]]], boots: dict[str, dict[str, list[np.ndarray]]],
           cats: list[str], m: str, level: float) -> dict[str, Any] | None:
    usable = [c for c in cats if all(np.isfinite(points[c][m]))]
    if not usable:
        return None
    a = float(np.mean([points[c][m][0] for c in usable]))
    b = float(np.mean([points[c][m][1] for c in usable]))
    if boots[usable[0]][m]:
        stacked = np.stack([np.hstack(boots[c][m]) for c in usable])  # cats x 2 x B
        draws = np.nanmean(stacked, axis=0)
    else:
        draws = np.zeros((2, 0))
    entry = _entry(a, b, draws, level)
    if entry is not None:
        entry["categories"] = usable
    return entry


def _ident(result: dict[str, Any]) -> dict[str, Any]:
    det = result.get("detector", {})
    return {"path": result.get("_path"), "detector": det.get("name"), "version": det.get("version"),
            "dataset_sha256": result.get("dataset", {}).get("sha256"), "created_at": result.get("created_at")}


def gate(comparison: dict[str, Any], metric: str = "auprc", max_drop: float = 0.01) -> list[dict[str, Any]]:
    """The regressions that should block a release.

    A view regresses when the candidate is worse by more than ``max_drop`` AND
    the paired interval excludes "no worse" (its bound on the better side is
    still on the worse side of zero). Both conditions: the first ignores
    differences too small to matter, the second differences too noisy to trust.
    """
    failures = []
    for view, entries in comparison["views"].items():
        e = entries.get(metric)
        if e is None:
            continue
        sign = 1.0 if e["higher_is_better"] else -1.0
        worse_by = -sign * e["delta"]
        bound = e["hi"] if sign > 0 else e["lo"]
        significant = bound is not None and sign * bound < 0
        if worse_by > max_drop and significant:
            failures.append({"view": view, "metric": metric, **e, "max_drop": max_drop})
    return failures
