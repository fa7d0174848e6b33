"""Evaluation results as JSON (for machines and gates) and HTML (for people).

The JSON is the record: which dataset (sha256), which detector and model
versions, which policy version, when, every metric with its interval, and
the per-row scores and labels, so that a later ``compare`` or a re-rendered
report needs nothing else. The HTML is one self-contained file (plots are
PNGs embedded as base64) that can be attached to a review or a release.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from referee.eval.analysis import analyse
from referee.eval.datasets import Row, describe, file_sha256
from referee.eval.fairness import bias_report
from referee.eval.functional import functional_report
from referee.eval.metrics import evaluate
from referee.eval.runner import Scores

SCHEMA = "referee.eval.result/1"


def build_result(
    rows: Sequence[Row],
    scores: Scores,
    dataset_path: str | Path | None = None,
    policy: Any = None,
    card: Any = None,
    split: str | None = None,
    n_boot: int = 1000,
    seed: int = 13,
    target_precision: float = 0.9,
) -> dict[str, Any]:
    """Everything one run produced, as a JSON-ready dict."""
    data = scores.labelled(rows)
    metrics = evaluate(data, scores.thresholds, n_boot=n_boot, seed=seed, target_precision=target_precision)
    info = describe(list(rows), card)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dataset": {
            "path": str(dataset_path) if dataset_path else None,
            "sha256": file_sha256(dataset_path) if dataset_path else None,
            "format": info.get("format"),
            "licence": info.get("licence"),
            "split": split or "all",
            "rows": len(rows),
            "labels": info["labels"],
        },
        "detector": scores.source,
        "policy": {"id": policy.id, "version": policy.version, "sha256": policy.sha256} if policy else None,
        "thresholds": scores.thresholds,
        "bootstrap": {"n": n_boot, "seed": seed, "level": 0.95},
        "metrics": metrics,
        "fairness": fairness_views(rows, scores, data),
        "functional": functional_report(rows, scores.scores, scores.thresholds),
        "analysis": analyse(rows, scores.scores, scores.thresholds, data.labels, data.any_labels,
                            policy if scores.source.get("kind") != "engine" else None,
                            detector=str(scores.source.get("name", "detector")),
                            surface=str(scores.source.get("surface", "comment"))),
        "predictions": {
            "ids": scores.ids,
            "categories": scores.categories,
            "scores": {c: [round(float(x), 6) for x in scores.scores[c]] for c in scores.categories},
            "labels": {c: data.labels[c].tolist() for c in scores.categories},
            "any": data.any_labels.tolist(),
        },
    }
    return result


def fairness_views(rows: Sequence[Row], scores: Scores, data: Any) -> dict[str, Any]:
    """Bias metrics for every label view that has identity groups and both classes."""
    if not any(r.groups for r in rows):
        return {}
    groups = [r.groups for r in rows]
    out: dict[str, Any] = {}
    views = {c: (data.labels[c], scores.scores[c], scores.thresholds[c]) for c in scores.categories}
    views["any_unsafe"] = (data.any_labels, data.any_scores(),
                           min(scores.thresholds.values()) if scores.thresholds else 0.5)
    for name, (labels, s, threshold) in views.items():
        known = labels >= 0
        grouped_known = [g for g, k in zip(groups, known) if k and g]
        if not grouped_known:
            continue
        y = labels[known]
        if y.min() == y.max():
            continue
        out[name] = bias_report(y, s[known], [g for g, k in zip(groups, known) if k], threshold)
    return out


def write_json(result: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, ensure_ascii=False, allow_nan=False, default=_jsonable) + "\n",
                    encoding="utf-8")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_result(path: str | Path) -> dict[str, Any]:
    from referee.errors import InputError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read evaluation result: {exc}", where=str(path)) from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise InputError(f"not a referee evaluation result (expected schema {SCHEMA!r}); "
                         "produce one with `referee eval run`", where=str(path))
    data["_path"] = str(path)
    return data


# -- plots ----------------------------------------------------------------------
PALETTE = ["#4361ee", "#e63946", "#2a9d8f", "#f4a261", "#9b5de5", "#6c757d", "#00b4d8", "#d62828", "#111111"]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float) -> Any:
    # Figure without pyplot: no global backend state, safe in servers and threads.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    fig.patch.set_facecolor("white")
    return fig


def _style(ax: Any) -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.grid(True, alpha=0.25)


def _views_with_both_classes(result: dict[str, Any]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    pred = result["predictions"]
    out = []
    for cat in pred["categories"]:
        y = np.asarray(pred["labels"][cat])
        s = np.asarray(pred["scores"][cat])
        known = y >= 0
        if known.any() and 0 < y[known].sum() < known.sum():
            out.append((cat, y[known], s[known]))
    y = np.asarray(pred["any"])
    known = y >= 0
    if known.any() and 0 < y[known].sum() < known.sum() and pred["categories"]:
        s = np.max(np.vstack([pred["scores"][c] for c in pred["categories"]]), axis=0)
        out.append(("any unsafe", y[known], s[known]))
    return out


def plot_pr_curves(result: dict[str, Any]) -> str | None:
    from sklearn.metrics import precision_recall_curve

    views = _views_with_both_classes(result)
    if not views:
        return None
    fig = _figure(5.0, 3.7)
    ax = fig.add_subplot()
    for i, (name, y, s) in enumerate(views):
        prec, rec, _ = precision_recall_curve(y, s)
        style = "--" if name == "any unsafe" else "-"
        ax.step(rec, prec, where="post", color=PALETTE[i % len(PALETTE)], ls=style, lw=1.8,
                label=f"{name} (base rate {y.mean():.2f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("Precision-recall curves")
    ax.legend(fontsize=8, frameon=False, loc="lower left")
    _style(ax)
    return _png(fig)


def plot_reliability(result: dict[str, Any]) -> str | None:
    views = _views_with_both_classes(result)
    if not views:
        return None
    fig = _figure(5.0, 3.7)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#999", lw=1, ls=":", label="perfect calibration")
    edges = np.linspace(0, 1, 11)
    for i, (name, y, s) in enumerate(views):
        idx = np.minimum((s * 10).astype(int), 9)
        xs, ys, ns = [], [], []
        for b in range(10):
            m = idx == b
            if m.sum():
                xs.append(s[m].mean())
                ys.append(y[m].mean())
                ns.append(m.sum())
        sizes = 12 + 60 * np.sqrt(np.asarray(ns) / max(ns))
        ax.plot(xs, ys, color=PALETTE[i % len(PALETTE)], lw=1.4, alpha=0.85)
        ax.scatter(xs, ys, s=sizes, color=PALETTE[i % len(PALETTE)], label=name, zorder=3)
    ax.set_xticks(edges[::2])
    ax.set_xlabel("mean score in bin")
    ax.set_ylabel("fraction positive")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("Reliability (marker size = rows in bin)")
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    _style(ax)
    return _png(fig)


def plot_bias_heatmap(view: str, report: dict[str, Any]) -> str | None:
    groups = report["groups"]
    if not groups:
        return None
    names = sorted(groups, key=lambda g: min((groups[g][k] or 1.0) for k in ("subgroup_auc", "bpsn_auc", "bnsp_auc")))
    cols = ("subgroup_auc", "bpsn_auc", "bnsp_auc")
    matrix = np.array([[groups[g][c] if groups[g][c] is not None else np.nan for c in cols] for g in names])
    fig = _figure(5.6, 0.8 + 0.28 * len(names))
    ax = fig.add_subplot()
    im = ax.imshow(matrix, cmap="RdYlGn", vmin=0.5, vmax=1.0, aspect="auto")
    ax.set_xticks(range(3), ["subgroup AUC", "BPSN AUC", "BNSP AUC"])
    ax.set_yticks(range(len(names)), [f"{g} (n={groups[g]['n']})" for g in names], fontsize=8)
    for i in range(len(names)):
        for j in range(3):
            v = matrix[i, j]
            ax.text(j, i, "–" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=7.5,
                    color="white" if not np.isnan(v) and (v < 0.62 or v > 0.93) else "black")
    ax.set_title(f"Bias AUCs per identity group: {view} (worst first)")
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    return _png(fig)


def plot_functional(report: dict[str, Any]) -> str | None:
    entries = report.get("functionalities", []) + report.get("contrast", [])
    if not entries or report.get("grouped_by") != "functionality":
        entries = entries[:40]
    if not entries:
        return None
    fig = _figure(7.0, 0.6 + 0.24 * len(entries))
    ax = fig.add_subplot()
    labels = [f"{e['name']} (n={e['n']})" for e in entries]
    colours = ["#e76f51" if e["contrast"] else "#4361ee" for e in entries]
    ax.barh(range(len(entries)), [e["accuracy"] for e in entries], color=colours)
    ax.set_yticks(range(len(entries)), labels, fontsize=7.5)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.axvline(0.5, color="#999", lw=0.8, ls=":")
    ax.set_xlabel("accuracy")
    by = "functionality" if report.get("grouped_by") == "functionality" else "source label"
    ax.set_title(f"Accuracy per {by} (blue: should flag, orange: should not)")
    _style(ax)
    return _png(fig)


# -- HTML -----------------------------------------------------------------------
_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f5f6fa;color:#1d2433}
header{background:#1d2433;color:#fff;padding:24px 40px}
header h1{margin:0 0 6px;font-size:24px;font-weight:600}
header .sub{opacity:.75;font-size:14px}
main{padding:24px 40px;max-width:1280px}
.scroll{overflow-x:auto}
.cards{display:flex;gap:14px;flex-wrap:wrap;margin-bottom:20px}
.card{background:#fff;border-radius:10px;padding:14px 18px;box-shadow:0 1px 3px rgba(0,0,0,.08);min-width:150px}
.card .k{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:#6b7280}
.card .v{font-size:24px;font-weight:600;margin-top:4px}
.card .ci{font-size:12px;color:#6b7280}
section{background:#fff;border-radius:10px;padding:18px 22px;margin-bottom:20px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
h2{font-size:18px;margin:0 0 12px}
h3{font-size:15px;margin:18px 0 8px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:5px 7px;border-bottom:1px solid #eceef3;text-align:right;white-space:nowrap}
th{background:#f8f9fc;font-weight:600;color:#374151}
td:first-child,th:first-child{text-align:left;white-space:normal;min-width:170px;max-width:320px}
td.ci{color:#6b7280;font-size:11px}
.note{color:#6b7280;font-size:12px}
.plots{display:flex;flex-wrap:wrap;gap:16px}
.plots img{max-width:100%;border:1px solid #eceef3;border-radius:6px}
.bad{color:#c0392b;font-weight:600}.good{color:#1e8449}
.warn{background:#fdecea;border:1px solid #f5c6cb;border-radius:6px;padding:4px 12px;margin:8px 0}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}
.meta td{text-align:left;white-space:normal}
"""


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return html.escape(str(x))


def _cell(m: dict[str, Any] | None) -> str:
    if not m or m.get("value") is None:
        return "<td>–</td>"
    ci = f"<br><span class='note'>{_fmt(m['lo'])}–{_fmt(m['hi'])}</span>" if m.get("lo") is not None else ""
    return f"<td>{_fmt(m['value'])}{ci}</td>"


def _img(b64: str | None, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{b64}'>" if b64 else ""


def render_html(result: dict[str, Any]) -> str:
    """One self-contained HTML page for a result."""
    ds, det, pol, met = result["dataset"], result["detector"], result.get("policy"), result["metrics"]
    title = f"{det.get('name')} on {Path(ds.get('path') or 'dataset').name}"
    any_view = met["any_unsafe"]
    cards = []
    for key, label in (("auprc", "AUPRC"), ("roc_auc", "ROC-AUC"), ("recall", "recall"), ("f1", "F1"),
                       ("fpr", "FPR")):
        usable = any_view.get(key, {}).get("value") is not None and not any_view.get("note")
        src = any_view if usable else met["micro"] or {}
        m = src.get(key) or {}
        if m.get("value") is None:
            continue
        if src.get("note") and key in ("auprc", "roc_auc", "f1"):
            continue  # one class only: precision-based figures are trivial there, not a headline
        which = "any unsafe" if src is any_view else "micro"
        ci = f"{_fmt(m.get('lo'))}–{_fmt(m.get('hi'))}" if m.get("lo") is not None else ""
        cards.append(f"<div class='card'><div class='k'>{label} · {which}</div><div class='v'>{_fmt(m.get('value'))}"
                     f"</div><div class='ci'>{ci}</div></div>")
    cards.append(f"<div class='card'><div class='k'>rows</div><div class='v'>{ds['rows']}</div>"
                 f"<div class='ci'>split: {html.escape(str(ds.get('split')))}</div></div>")

    cols = ("auprc", "roc_auc", "precision", "recall", "f1", "fpr", "brier", "ece")
    head = "".join(f"<th>{c.upper() if c in ('auprc', 'fpr', 'ece') else c.replace('_', '-')}</th>" for c in cols)
    body = []
    views = list(met["per_category"].items()) + [("any unsafe", met["any_unsafe"])]
    for name, r in views:
        if r["n"] == 0:
            continue
        note = f"<br><span class='note'>{html.escape(r['note'])}</span>" if r.get("note") else ""
        atp = r.get("at_target_precision") or {}
        tp = (f"{_fmt(atp.get('threshold'), 2)} → recall {_fmt(atp.get('recall'), 2)}"
              if atp.get("threshold") is not None else "–")
        body.append(f"<tr><td><b>{html.escape(name)}</b>{note}</td><td>{r['n']}</td><td>{r['positives']}</td>"
                    f"<td>{_fmt(r['threshold'], 2)}</td>" + "".join(_cell(r.get(c)) for c in cols) + f"<td>{tp}</td></tr>")
    for name in ("macro", "micro"):
        r = met[name]
        if not r:
            continue
        body.append(f"<tr><td><i>{name}</i></td><td>{r.get('n', '')}</td><td>{r.get('positives', '')}</td><td></td>"
                    + "".join(_cell(r.get(c)) for c in cols) + "<td></td></tr>")
    target = next((r.get("at_target_precision", {}).get("target_precision") for _, r in views), 0.9)
    metrics_table = (f"<table><tr><th>category</th><th>n known</th><th>positives</th><th>threshold</th>{head}"
                     f"<th>threshold for P ≥ {_fmt(target, 2)}</th></tr>{''.join(body)}</table>")

    sections = [_analysis_html(result.get("analysis") or {}),
        f"<section><h2>Metrics</h2><div class='scroll'>{metrics_table}</div><p class='note'>Values with 95% bootstrap intervals "
        f"({result['bootstrap']['n']} resamples, seed {result['bootstrap']['seed']}). Rows whose label for a "
        f"category is unknown are left out of that category. {html.escape(any_view.get('definition', ''))}.</p>"
        "</section>",
    ]
    curves = _img(plot_pr_curves(result), "PR curves") + _img(plot_reliability(result), "reliability")
    if curves:
        sections.append(f"<section><h2>Curves</h2><div class='plots'>{curves}</div></section>")
    else:
        sections.append("<section><h2>Curves</h2><p class='note'>No category has both classes labelled here "
                        "(a positive-only or negative-only set): only recall or FPR is meaningful.</p></section>")
    fair = result.get("fairness") or {}
    if fair:
        parts = []
        for view, rep in fair.items():
            means = rep["generalised_means"]
            rows = "".join(
                f"<tr><td>{html.escape(g)}{' <span class=note>(small)</span>' if v['small'] else ''}</td><td>{v['n']}"
                f"</td><td>{v['positives']}</td><td>{_fmt(v['subgroup_auc'])}</td><td>{_fmt(v['bpsn_auc'])}</td>"
                f"<td>{_fmt(v['bnsp_auc'])}</td><td>{_fmt(v['fpr'])}</td><td>{_fmt(v['fnr'])}</td></tr>"
                for g, v in sorted(rep["groups"].items()))
            parts.append(
                f"<h3>{html.escape(view)}: final bias score {_fmt(rep['final_bias_score'])}</h3>"
                f"<p class='note'>overall AUC {_fmt(rep['overall_auc'])}; power means (p = {rep['power']:g}): "
                f"subgroup {_fmt(means['subgroup_auc'])}, BPSN {_fmt(means['bpsn_auc'])}, BNSP "
                f"{_fmt(means['bnsp_auc'])}; FPR/FNR at threshold {_fmt(rep['threshold'], 2)}.</p>"
                f"<div class='plots'>{_img(plot_bias_heatmap(view, rep), 'bias heat map')}</div>"
                "<table><tr><th>group</th><th>n</th><th>positives</th><th>subgroup AUC</th><th>BPSN AUC</th>"
                f"<th>BNSP AUC</th><th>FPR</th><th>FNR</th></tr>{rows}</table>")
        sections.append("<section><h2>Fairness per identity group</h2>" + "".join(parts) + "</section>")
    fun = result.get("functional") or {}
    if fun.get("n"):
        def table(title: str, entries: list[dict[str, Any]]) -> str:
            if not entries:
                return ""
            rows = "".join(
                f"<tr><td>{html.escape(e['name'])}"
                + (f"<br><span class='note'>{html.escape(e['key'])}</span>" if e["name"] != e["key"] else "")
                + f"</td><td>{e['n']}</td><td class='{'bad' if e['accuracy'] < 0.5 else ''}'>"
                f"{_fmt(e['accuracy'])}</td></tr>" for e in entries)
            return (f"<h3>{title}</h3><table><tr><th>{fun['grouped_by'].replace('_', ' ')}</th><th>n</th>"
                    f"<th>accuracy</th></tr>{rows}</table>")
        group_rows = "".join(
            f"<tr><td>{html.escape(g)}</td>" + "".join(
                f"<td>{_fmt(v.get(k, {}).get('accuracy'))} <span class='note'>({v.get(k, {}).get('n', 0)})</span></td>"
                for k in ("positive", "negative", "all")) + "</tr>" for g, v in fun["groups"].items())
        lang_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v['n']}</td><td>{_fmt(v['accuracy'])}</td></tr>"
                            for k, v in fun.get("languages", {}).items())
        sections.append(
            f"<section><h2>Functional tests</h2><p class='note'>Overall accuracy {_fmt(fun['accuracy'])} on "
            f"{fun['n']} cases; a case is right when every label it has is predicted right.</p>"
            f"<div class='plots'>{_img(plot_functional(fun), 'functional')}</div>"
            + table("Should flag", fun["functionalities"])
            + table("Contrast: should not flag", fun["contrast"])
            + ("<h3>Per target group</h3><table><tr><th>group</th><th>should flag</th><th>should not</th>"
               f"<th>all</th></tr>{group_rows}</table>" if set(fun["groups"]) - {"(none)"} else "")
            + (f"<h3>Per language</h3><table><tr><th>language</th><th>n</th><th>accuracy</th></tr>{lang_rows}"
               "</table>" if lang_rows else "")
            + "</section>")
    meta_rows = [
        ("dataset", ds.get("path")), ("dataset sha256", ds.get("sha256")), ("format", ds.get("format")),
        ("licence", ds.get("licence")), ("split", ds.get("split")),
        ("detector", f"{det.get('name')} {det.get('version')}"),
        ("policy", f"{pol['id']} {pol['version']} (sha256 {pol['sha256'][:12]})" if pol else "–"),
        ("created", result.get("created_at")),
        ("thresholds", ", ".join(f"{k} {v:g}" for k, v in result["thresholds"].items())),
    ]
    sections.append("<section><h2>Provenance</h2><table class='meta'>" + "".join(
        f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(str(v))}</td></tr>" for k, v in meta_rows)
        + "</table></section>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><header><h1>{html.escape(title)}</h1><div class='sub'>referee "
            f"evaluation · {html.escape(str(result.get('created_at')))}</div></header><main>"
            f"<div class='cards'>{''.join(cards)}</div>{''.join(sections)}</main></body></html>")


def _analysis_html(a: dict[str, Any]) -> str:
    """The analyst's section, first on the page: warnings, worst slices, what the policy does,
    example mistakes; confusion counts and threshold sweeps folded below."""
    if not a:
        return ""
    parts = ["<section><h2>Read first</h2>"]
    if a.get("warnings"):
        parts.append("<div class='warn'><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in a["warnings"])
                     + "</ul></div>")
    if a.get("worst_slices"):
        rows = "".join(
            f"<tr><td>{html.escape(r['slice'])}</td><td>{html.escape(r['view'])}</td><td>{r['error']}</td>"
            f"<td class='{'bad' if r['rate'] >= 0.5 else ''}'>{_fmt(r['rate'])}<br><span class='note'>"
            f"{_fmt(r['lo'])}–{_fmt(r['hi'])}</span></td><td>{r['errors']} / {r['n']}</td></tr>"
            for r in a["worst_slices"])
        parts.append("<h3>Worst slices</h3><p class='note'>FNR = share of labelled positives missed, FPR = share of "
                     "labelled negatives flagged, at the run's thresholds; 95% Wilson intervals; sorted by the lower "
                     "end of the interval.</p><table><tr><th>slice</th><th>view</th><th>error</th><th>rate</th>"
                     f"<th>errors / n</th></tr>{rows}</table>")
    pa = a.get("policy_actions")
    if pa:
        actions = sorted({k for v in pa.values() for k in v if k != "n"})
        head = "".join(f"<th>{html.escape(x)}</th>" for x in actions)
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v['n']}</td>"
                       + "".join(f"<td>{_fmt(v.get(x, 0.0))}</td>" for x in actions) + "</tr>" for k, v in pa.items())
        parts.append("<h3>What the policy would do</h3><p class='note'>Shares of each action from the policy's rules "
                     f"given these scores.</p><table><tr><th>rows</th><th>n</th>{head}</tr>{rows}</table>")
    ex = a.get("examples") or {}
    ex_rows = "".join(
        f"<tr><td>{html.escape(view)}</td><td>{kind.replace('_', ' ')}</td><td>{_fmt(e['score'])}</td>"
        f"<td>{html.escape(e['text'])}</td></tr>"
        for view, d in ex.items() for kind in ("misses", "false_flags") for e in d.get(kind, [])[:3])
    if ex_rows:
        parts.append("<h3>Example mistakes</h3><table><tr><th>view</th><th>kind</th><th>score</th><th>text</th></tr>"
                     f"{ex_rows}</table>")
    conf = a.get("confusion") or {}
    if conf:
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v['threshold'], 2)}</td><td>{v['tp']}</td>"
                       f"<td>{v['fp']}</td><td>{v['fn']}</td><td>{v['tn']}</td></tr>" for k, v in conf.items())
        parts.append("<details><summary>Confusion counts</summary><table><tr><th>view</th><th>threshold</th>"
                     f"<th>TP</th><th>FP</th><th>FN</th><th>TN</th></tr>{rows}</table></details>")
    sw = a.get("sweep") or {}
    if sw:
        blocks = []
        for view, points in sw.items():
            rows = "".join(f"<tr><td>{_fmt(p['threshold'], 2)}</td><td>{_fmt(p['flagged'])}</td>"
                           f"<td>{_fmt(p['recall'])}</td><td>{_fmt(p['fpr'])}</td><td>{_fmt(p['precision'])}</td></tr>"
                           for p in points)
            blocks.append(f"<h4>{html.escape(view)}</h4><table><tr><th>threshold</th><th>flagged</th><th>recall</th>"
                          f"<th>FPR</th><th>precision</th></tr>{rows}</table>")
        parts.append("<details><summary>Threshold sweep per category</summary>" + "".join(blocks) + "</details>")
    parts.append("</section>")
    return "".join(parts)


def write_html(result: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(result), encoding="utf-8")
