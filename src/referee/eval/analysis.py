"""What an analyst should look at first: the worst slices, example mistakes, and what the policy would do.

The metrics table of a report answers "how good is it on average"; a safety
team needs "where is it worst, what does it get wrong, and what happens to
the content". This module adds, from the same scores and labels:

* **warnings**: a category the detector ranks at or below chance (ROC-AUC ≤ 0.5),
  a set with one class only (precision and AUPRC say nothing there);
* **worst slices** first: error rates (FNR on positives, FPR on negatives) per
  functionality, identity group, source and category, each with a 95 % Wilson
  interval, sorted by the lower end of the interval so small slices do not
  crowd out large ones by luck;
* **confusion counts** and a **threshold sweep** per category;
* **examples**: the most confident misses and false flags, with their scores;
* **policy actions**: the shares of allow / review / remove ... the policy's
  rules would produce from these scores (signals carry the run's thresholds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from referee.eval.datasets import Row
from referee.stats import wilson_interval

#: Row ``meta`` keys that name a slice worth reporting.
SLICE_KEYS = ("functionality", "source", "subcategory", "hazard", "category", "file", "direction")
SWEEP = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
MIN_SLICE = 10


def wilson(errors: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of an error rate (``referee.stats``); NaN for an empty slice."""
    return (math.nan, math.nan) if n == 0 else wilson_interval(errors, n)


def _slices(rows: Sequence[Row]) -> dict[str, np.ndarray]:
    out: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        for key in SLICE_KEYS:
            value = r.meta.get(key)
            if isinstance(value, str | int) and str(value):
                out.setdefault(f"{key}={value}", []).append(i)
        for g in r.groups:
            out.setdefault(f"group={g}", []).append(i)
    return {k: np.array(v, dtype=np.int64) for k, v in out.items()}


def analyse(rows: Sequence[Row], scores: dict[str, np.ndarray], thresholds: dict[str, float],
            labels: dict[str, np.ndarray], any_labels: np.ndarray, policy: Any = None, detector: str = "detector",
            surface: str = "comment", examples: int = 5, max_slices: int = 25) -> dict[str, Any]:
    """The analyst's view of one run; ``labels`` use -1 for unknown."""
    from referee.classifier.metrics import roc_auc

    cats = list(scores)
    warnings: list[str] = []
    confusion: dict[str, dict[str, float]] = {}
    sweep: dict[str, list[dict[str, Any]]] = {}
    mistakes: dict[str, dict[str, list[dict[str, Any]]]] = {}
    slice_rows: list[dict[str, Any]] = []
    slices = _slices(rows)
    views = [(c, labels[c], scores[c], thresholds.get(c, 0.5)) for c in cats]
    if cats:
        views.append(("any unsafe", any_labels, np.max(np.vstack([scores[c] for c in cats]), axis=0),
                      min(thresholds.get(c, 0.5) for c in cats)))
    for name, y_all, s_all, thr in views:
        known = y_all >= 0
        y, s = y_all[known], s_all[known]
        n_pos, n = int(y.sum()), int(known.sum())
        if n == 0:
            continue
        flag = s >= thr
        tp, fp = int((flag & (y == 1)).sum()), int((flag & (y == 0)).sum())
        confusion[name] = {"tp": tp, "fp": fp, "fn": n_pos - tp, "tn": n - n_pos - fp, "threshold": round(thr, 4)}
        if 0 < n_pos < n:
            auc = float(roc_auc(s, y.astype(np.float32)))
            if n_pos >= 5 and n - n_pos >= 5 and auc <= 0.5:
                warnings.append(f"{detector} ranks {name} at or below chance here (ROC-AUC {auc:.3f} on "
                                f"{n_pos} positives / {n - n_pos} negatives): its scores carry no signal for it")
        elif name == "any unsafe" or n_pos:
            only = "positives" if n_pos else "negatives"
            warnings.append(f"{name}: only {only} are labelled ({n} rows): precision and AUPRC are undefined or "
                            f"trivial; read {'recall' if n_pos else 'the false-positive rate'}")
        sweep[name] = [{"threshold": t, "flagged": round(float((s >= t).mean()), 4),
                        "recall": round(float((s[y == 1] >= t).mean()), 4) if n_pos else None,
                        "fpr": round(float((s[y == 0] >= t).mean()), 4) if n - n_pos else None,
                        "precision": (round(float(y[s >= t].mean()), 4) if (s >= t).any() and 0 < n_pos < n
                                      else None)}
                       for t in sorted({*SWEEP, round(thr, 4)})]
        idx = np.flatnonzero(known)
        miss = idx[(y_all[idx] == 1) & (s_all[idx] < thr)]
        false = idx[(y_all[idx] == 0) & (s_all[idx] >= thr)]
        mistakes[name] = {
            "misses": [_example(rows[i], s_all[i]) for i in miss[np.argsort(s_all[miss])][:examples]],
            "false_flags": [_example(rows[i], s_all[i]) for i in false[np.argsort(-s_all[false])][:examples]],
        }
        for sname, members in slices.items():
            m = members[known[members]]
            for kind, cls in (("FNR", 1), ("FPR", 0)):
                sel = m[y_all[m] == cls]
                if len(sel) < MIN_SLICE:
                    continue
                wrong = s_all[sel] < thr if cls == 1 else s_all[sel] >= thr
                errors = int(wrong.sum())
                lo, hi = wilson(errors, len(sel))
                slice_rows.append({"slice": sname, "view": name, "error": kind, "n": int(len(sel)),
                                   "errors": errors, "rate": round(errors / len(sel), 4), "lo": round(lo, 4),
                                   "hi": round(hi, 4)})
    slice_rows.sort(key=lambda r: (-r["lo"], -r["rate"], r["slice"]))
    out: dict[str, Any] = {"warnings": warnings, "worst_slices": slice_rows[:max_slices], "confusion": confusion,
                           "sweep": sweep, "examples": mistakes}
    if policy is not None:
        out["policy_actions"] = policy_actions(rows, scores, thresholds, policy, detector, surface)
    return out


def _example(row: Row, score: float) -> dict[str, Any]:
    return {"id": row.id, "score": round(float(score), 4), "text": row.text[:240]}


def policy_actions(rows: Sequence[Row], scores: dict[str, np.ndarray], thresholds: dict[str, float], policy: Any,
                   detector: str = "detector", surface: str = "comment") -> dict[str, Any]:
    """Shares of each action the policy's rules give these scores (one signal per category,
    carrying the run's threshold as its operating threshold), overall and by label."""
    from referee.engine.decide import decide
    from referee.eval.runner import to_item
    from referee.model import Signal

    cats = [c for c in scores if c in set(policy.categories)]
    counts: dict[str, dict[str, int]] = {"all": {}, "labelled unsafe": {}, "labelled safe": {}}
    for i, row in enumerate(rows):
        item = to_item(row, surface)
        signals = [Signal(detector=detector, detector_version="eval", category=c,
                          score=float(min(max(scores[c][i], 0.0), 1.0)), operating_threshold=thresholds.get(c))
                   for c in cats]
        action = decide(policy, item, signals).action.value
        label = row.any_unsafe()
        for key in ("all", *(["labelled unsafe"] if label == 1 else ["labelled safe"] if label == 0 else [])):
            counts[key][action] = counts[key].get(action, 0) + 1
    return {k: {"n": sum(v.values()), **{a: round(c / sum(v.values()), 4) for a, c in sorted(v.items())}}
            for k, v in counts.items() if v}
