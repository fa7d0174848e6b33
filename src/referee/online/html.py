"""The experiment report as one self-contained HTML page (charts as embedded PNGs).

Figures are drawn with matplotlib's object API (``Figure``, no pyplot): no global
backend state, safe in a server thread, as ``referee.eval.report`` does.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from referee.online.experiments import ExperimentReport, Rate

__all__ = ["render_experiment_html", "write_experiment_html"]

_LABELS = {
    "action_rate": "action rate",
    "appeal_rate": "appeal rate (of actioned)",
    "overturn_rate": "overturn rate (of actioned)",
    "user_report_rate_after_allow": "user reports after allow",
    "reviewer_load": "reviewer load (items queued)",
}


def _figure(w: float, h: float) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    fig.patch.set_facecolor("white")
    return fig


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _rates_chart(report: ExperimentReport) -> str:
    """Each metric's rate per arm, with its 95 % Wilson interval."""
    metrics = list(_LABELS)
    fig = _figure(9, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(report.arms))
    for k, arm in enumerate(report.arms):
        xs, ys, lo, hi = [], [], [], []
        for m, metric in enumerate(metrics):
            rate: Rate | None = getattr(arm, metric)
            if rate is None or rate.rate is None:
                continue
            xs.append(m + (k - (len(report.arms) - 1) / 2) * width)
            ys.append(rate.rate)
            lo.append(rate.rate - rate.low)
            hi.append(rate.high - rate.rate)
        ax.bar(xs, ys, width=width, yerr=[lo, hi], capsize=3, label=arm.arm)
    ax.set_xticks(range(len(metrics)), [_LABELS[m] for m in metrics], rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("rate (95 % Wilson interval)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.25)
    return _png(fig)


def _differences_chart(report: ExperimentReport) -> str | None:
    """Each arm's difference from control, with its 95 % Newcombe interval."""
    shown = [d for d in report.differences if d.difference is not None]
    if not shown:
        return None
    fig = _figure(8, 0.35 * len(shown) + 1.2)
    ax = fig.add_subplot(1, 1, 1)
    ys = list(range(len(shown)))
    ax.errorbar([d.difference for d in shown], ys,
                xerr=[[d.difference - d.low for d in shown],  # type: ignore[operator]
                      [d.high - d.difference for d in shown]],  # type: ignore[operator]
                fmt="o", capsize=3)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(ys, [f"{d.arm}: {_LABELS[d.metric]}" for d in shown], fontsize=8)
    ax.set_xlabel(f"difference from {report.control} (95 % Newcombe interval)")
    ax.grid(True, axis="x", alpha=0.25)
    return _png(fig)


def _units_chart(report: ExperimentReport) -> str:
    """Units per arm, seen and expected from the shares (the sample-ratio check)."""
    srm = report.sample_ratio
    arms = list(srm.observed)
    fig = _figure(5, 3)
    ax = fig.add_subplot(1, 1, 1)
    xs = range(len(arms))
    ax.bar([x - 0.2 for x in xs], [srm.observed[a] for a in arms], width=0.4, label="seen")
    ax.bar([x + 0.2 for x in xs], [srm.expected[a] for a in arms], width=0.4, label="expected", alpha=0.6)
    ax.set_xticks(list(xs), arms)
    ax.set_ylabel("units")
    ax.legend(fontsize=8)
    return _png(fig)


def _img(b64: str | None, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{b64}'>" if b64 else ""


def render_experiment_html(report: ExperimentReport) -> str:
    e = html.escape
    srm = report.sample_ratio
    verdict = ("<b style='color:#b00'>MISMATCH: assignment or exposure logging is broken; do not read the "
               "metrics until it is found</b>" if srm.mismatch else "ok")
    rows = []
    for a in report.arms:
        cells = "".join(f"<td>{_cell(getattr(a, m))}</td>" for m in _LABELS)
        latency = "-" if a.review_latency_median_s is None else f"{a.review_latency_median_s:.1f}"
        per_1k = "-" if a.review_tasks_per_1k is None else f"{a.review_tasks_per_1k:.1f}"
        rows.append(f"<tr><td>{e(a.arm)}</td><td>{a.units}</td><td>{a.items}</td>{cells}"
                    f"<td>{per_1k}</td><td>{latency}</td></tr>")
    diffs = "".join(
        f"<tr><td>{e(d.arm)}</td><td>{e(_LABELS[d.metric])}</td>"
        + (f"<td>{d.difference:+.4f}</td><td>[{d.low:+.4f}, {d.high:+.4f}]</td>" if d.difference is not None
           else "<td colspan=2>not measured</td>") + "</tr>"
        for d in report.differences)
    window = f"{report.since or 'start'} to {report.until or 'now'}"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>experiment {e(report.experiment)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;
margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}</style></head><body>
<h1>Experiment {e(report.experiment)}</h1>
<p>Control: <b>{e(report.control)}</b>. Exposures from {e(window)}.</p>
<h2>Sample ratio</h2>
<p>chi-square {srm.chi2:.2f}, {srm.df} degrees of freedom, p = {srm.p_value:.3g}: {verdict}</p>
{_img(_units_chart(report), "units per arm")}
<h2>Metrics per arm</h2>
<table><tr><th>arm</th><th>units</th><th>items</th>{''.join(f'<th>{e(v)}</th>' for v in _LABELS.values())}
<th>review tasks / 1k items</th><th>review latency, median s</th></tr>{''.join(rows)}</table>
{_img(_rates_chart(report), "rates per arm")}
<h2>Differences from control</h2>
<table><tr><th>arm</th><th>metric</th><th>difference</th><th>95 % interval (Newcombe)</th></tr>{diffs}</table>
{_img(_differences_chart(report), "differences from control")}
<p style="font-size:12px;color:#555">Rates are per item, assignment is per unit: items of one unit are
correlated, so the intervals are too narrow when a few units contribute many items.</p>
</body></html>
"""


def _cell(rate: Rate | None) -> str:
    if rate is None or rate.rate is None:
        return "-"
    return f"{rate.rate:.4f}<br><small>[{rate.low:.3f}, {rate.high:.3f}] of {rate.n}</small>"


def write_experiment_html(report: ExperimentReport, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(render_experiment_html(report), encoding="utf-8")
