"""`referee eval`: score a detector on a dataset, compare two runs, gate a release, run a suite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from referee.cli.detectors import registry_of
from referee.errors import ConfigError, RefereeError

eval_app = typer.Typer(help="Evaluate detectors: metrics, fairness, functional tests, comparisons, gates.",
                       no_args_is_help=True)
#: markup=False: paths, names and dataset fields are printed as they are, never read as Rich markup.
_out = Console(markup=False)
_err = Console(stderr=True, markup=False)

DEFAULT_POLICY = Path("policies/default.yaml")
#: numpy takes seeds in [0, 2**32); more resamples than this only burn time.
MAX_SEED = 2**32 - 1
MAX_BOOTSTRAP = 100_000


def _fail(exc: RefereeError) -> typer.Exit:
    _err.print(Text.assemble(("error:", "red"), f" {exc}"))
    return typer.Exit(code=2)


def _f(x: Any, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ci(m: dict[str, Any] | None) -> Text:
    if not m or m.get("value") is None:
        return Text("–")
    if m.get("lo") is None:
        return Text(_f(m["value"]))
    return Text.assemble(_f(m["value"]), (f" ({_f(m['lo'], 2)}–{_f(m['hi'], 2)})", "dim"))


@eval_app.command("run")
def run(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="A referee dataset (JSONL).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the result JSON.")],
    detector: Annotated[str, typer.Option(help="lexicon, classifier, any registered detector, or engine.")]
    = "lexicon",
    policy_path: Annotated[Path, typer.Option("--policy", help="Policy that configures the detector.")]
    = DEFAULT_POLICY,
    split: Annotated[str | None, typer.Option(help="Only rows of this split (train/dev/test).")] = None,
    predictions: Annotated[Path | None, typer.Option(help="Also write per-row scores as JSONL here.")] = None,
    scores_from: Annotated[Path | None, typer.Option(help="Read scores from this predictions JSONL instead "
                                                          "of running a detector.")] = None,
    html_path: Annotated[Path | None, typer.Option("--html", help="Also write a self-contained HTML report.")]
    = None,
    threshold: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Operating threshold for every category "
                                                         "(default: the detector's own, else 0.5).")] = None,
    surface: Annotated[str, typer.Option(help="Surface of the items (engine rules depend on it).")] = "comment",
    bootstrap: Annotated[int, typer.Option(min=0, max=MAX_BOOTSTRAP,
                                           help="Bootstrap resamples for the 95% intervals (0: none).")] = 1000,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of the bootstrap.")] = 13,
    target_precision: Annotated[float, typer.Option(min=0.01, max=1.0,
                                                    help="Report the threshold reaching this precision.")] = 0.9,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N rows (smoke tests).")] = None,
    exclude: Annotated[list[Path] | None, typer.Option(
        "--exclude", help="Drop rows that also occur (same near-duplicate key, or same user/group) in this "
                          "JSONL, e.g. a model's training data. Repeatable.")] = None,
) -> None:
    """Score a detector on a labelled dataset; write metrics JSON (and HTML)."""
    from referee.eval.datasets import check_labels, load_rows, read_card
    from referee.eval.report import build_result, write_html, write_json
    from referee.eval.runner import build_detector, load_predictions, score_detector, score_engine
    from referee.policy import load_policy

    try:
        rows = load_rows(data)
        if split:
            rows = [r for r in rows if r.split == split]
            if not rows:
                raise ConfigError(f"--split {split}: no rows of that split in {data}; run `referee data split` first")
        excluded = 0
        if exclude:
            from referee.eval.datasets import decontaminate

            before = len(rows)
            rows = decontaminate(rows, [r for path in exclude for r in load_rows(path)])
            excluded = before - len(rows)
            if not rows:
                raise ConfigError(f"--exclude removed every row of {data}: nothing held out is left to evaluate")
        if limit:
            rows = rows[:limit]
        policy = load_policy(policy_path)
        categories = check_labels(rows, policy.categories, where=str(data))
        if scores_from:
            scores = load_predictions(scores_from, rows, categories)
        elif detector == "engine":
            scores = score_engine(policy, rows, categories, surface=surface, registry=registry_of(ctx))
        else:
            scores = score_detector(build_detector(detector, policy, registry_of(ctx)), rows, categories,
                                    surface=surface)
        if threshold is not None:
            scores.thresholds = {c: threshold for c in scores.categories}
        result = build_result(rows, scores, data, policy, read_card(data), split, n_boot=bootstrap, seed=seed,
                              target_precision=target_precision)
        if exclude:
            result["dataset"]["excluded"] = {"files": [str(p) for p in exclude], "rows": excluded}
    except RefereeError as exc:
        raise _fail(exc) from exc
    write_json(result, out)
    if predictions:
        with predictions.open("w", encoding="utf-8") as handle:
            for line in scores.rows_json():
                handle.write(json.dumps(line) + "\n")
    if html_path:
        write_html(result, html_path)
    print_result(result)
    _out.print(f"wrote {out}" + (f" and {html_path}" if html_path else ""))


def print_result(result: dict[str, Any]) -> None:
    met = result["metrics"]
    det, ds = result["detector"], result["dataset"]
    table = Table(title=f"{det.get('name')} {det.get('version')} on {ds.get('path')} ({ds.get('split')}, "
                        f"{ds.get('rows')} rows)")
    for col in ("view", "n", "pos", "thr", "AUPRC (95% CI)", "ROC-AUC", "P", "R", "F1", "FPR", "ECE"):
        table.add_column(col, justify="left" if col == "view" else "right")
    views = list(met["per_category"].items()) + [("any unsafe", met["any_unsafe"])]
    for name, r in views:
        if r["n"] == 0:
            continue
        table.add_row(name, str(r["n"]), str(r["positives"]), _f(r["threshold"], 2), _ci(r["auprc"]),
                      *(_f(r[m]["value"]) for m in ("roc_auc", "precision", "recall", "f1", "fpr", "ece")))
    for name in ("macro", "micro"):
        r = met.get(name) or {}
        if r:
            table.add_row(Text(name, style="italic"), str(r.get("n", "")), str(r.get("positives", "")), "",
                          _ci(r.get("auprc")),
                          *(_f((r.get(m) or {}).get("value")) for m in ("roc_auc", "precision", "recall", "f1",
                                                                         "fpr", "ece")))
    _out.print(table)
    notes = [f"{name}: {r['note']}" for name, r in views if r.get("note") and r["n"]]
    for note in notes:
        _out.print(note, style="dim")
    for view, rep in (result.get("fairness") or {}).items():
        _out.print(f"fairness {view}: final bias score {_f(rep['final_bias_score'])} (overall AUC "
                   f"{_f(rep['overall_auc'])}, {len(rep['groups'])} groups)")
    fun = result.get("functional") or {}
    if fun.get("grouped_by") == "functionality" and fun.get("n"):
        _out.print(f"functional: accuracy {_f(fun['accuracy'])} on {fun['n']} cases; contrast (should not flag) "
                   f"mean accuracy {_f(_mean([e['accuracy'] for e in fun['contrast']]))}")


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


@eval_app.command("report")
def report(
    result_path: Annotated[Path, typer.Argument(help="A result JSON from `referee eval run`.")],
    html_path: Annotated[Path, typer.Option("--html", help="Where to write the HTML.")],
) -> None:
    """Render (or re-render) the HTML report of a stored result."""
    from referee.eval.report import read_result, write_html

    try:
        result = read_result(result_path)
    except RefereeError as exc:
        raise _fail(exc) from exc
    write_html(result, html_path)
    _out.print(f"wrote {html_path}")


def _comparison(baseline: Path, candidate: Path, metrics: list[str], bootstrap: int, seed: int) -> dict[str, Any]:
    from referee.eval.compare import compare
    from referee.eval.report import read_result

    a, b = read_result(baseline), read_result(candidate)
    result = compare(a, b, tuple(metrics), n_boot=bootstrap, seed=seed)
    if not result["same_dataset"]:
        _err.print(Text.assemble(("warning:", "yellow"), " the two results were computed on different dataset "
                                 f"files (sha256 differs); comparing the {result['rows']} rows they share"))
    return result


def _print_comparison(result: dict[str, Any], metrics: list[str]) -> None:
    table = Table(title=f"{result['candidate']['detector']} {result['candidate']['version']} vs "
                        f"{result['baseline']['detector']} {result['baseline']['version']} "
                        f"(paired bootstrap, {result['bootstrap']} resamples, {result['rows']} rows)")
    table.add_column("view")
    table.add_column("metric")
    for col in ("baseline", "candidate", "delta", "95% CI", "P(worse)"):
        table.add_column(col, justify="right")
    for view, entries in result["views"].items():
        for m in metrics:
            e = entries.get(m)
            if e is None:
                continue
            better = e["delta"] > 0 if e["higher_is_better"] else e["delta"] < 0
            lo_hi = f"{_f(e['lo'])} – {_f(e['hi'])}" if e["lo"] is not None else "–"
            significant = e["lo"] is not None and (e["lo"] > 0 or e["hi"] < 0)
            colour = ("green" if better else "red") if significant else "white"
            p_worse = e["p_worse"] if e["higher_is_better"] else (1 - e["p_worse"] if e["p_worse"] is not None
                                                                    else None)
            table.add_row(view, m, _f(e["baseline"]), _f(e["candidate"]), Text(f"{e['delta']:+.3f}", style=colour),
                          lo_hi, _f(p_worse, 2))
    _out.print(table)


@eval_app.command("compare")
def compare_cmd(
    baseline: Annotated[Path, typer.Argument(help="Result JSON of the baseline run.")],
    candidate: Annotated[Path, typer.Argument(help="Result JSON of the candidate run.")],
    metric: Annotated[list[str] | None, typer.Option(help="Metrics to compare (repeatable).")] = None,
    bootstrap: Annotated[int, typer.Option(min=0, max=MAX_BOOTSTRAP, help="Paired bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 13,
    out: Annotated[Path | None, typer.Option(help="Write the comparison JSON here.")] = None,
) -> None:
    """Per-metric deltas (candidate - baseline) with paired-bootstrap 95% intervals."""
    metrics = metric or ["auprc", "roc_auc", "f1", "recall", "fpr"]
    try:
        result = _comparison(baseline, candidate, metrics, bootstrap, seed)
    except RefereeError as exc:
        raise _fail(exc) from exc
    _print_comparison(result, metrics)
    if out:
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


@eval_app.command("gate")
def gate_cmd(
    baseline: Annotated[Path, typer.Option(help="Result JSON of the current release.")],
    candidate: Annotated[Path, typer.Option(help="Result JSON of the candidate.")],
    max_drop: Annotated[float, typer.Option(min=0.0, max=1.0, help="Largest tolerated drop of the metric.")] = 0.01,
    metric: Annotated[str, typer.Option(help="Metric to gate on.")] = "auprc",
    bootstrap: Annotated[int, typer.Option(min=0, max=MAX_BOOTSTRAP, help="Paired bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 13,
) -> None:
    """Exit 1 when the candidate is significantly worse than the baseline by more than --max-drop."""
    from referee.eval.compare import gate

    try:
        result = _comparison(baseline, candidate, [metric], bootstrap, seed)
        failures = gate(result, metric, max_drop)
    except RefereeError as exc:
        raise _fail(exc) from exc
    _print_comparison(result, [metric])
    if failures:
        for f in failures:
            _err.print(Text.assemble(("REGRESSION", "red"), f" {f['view']} {metric}: {f['baseline']:.3f} -> "
                                     f"{f['candidate']:.3f} (delta {f['delta']:+.3f}, 95% CI {f['lo']:+.3f} to "
                                     f"{f['hi']:+.3f}; tolerated drop {max_drop})"))
        raise typer.Exit(code=1)
    _out.print(Text.assemble(("gate passed", "green"),
                             f": no view's {metric} dropped by more than {max_drop} with confidence"))


@eval_app.command("summary")
def summary(
    results: Annotated[list[Path], typer.Argument(help="Result JSON files from `referee eval run`.")],
    markdown: Annotated[Path | None, typer.Option(help="Also write the table as Markdown here.")] = None,
) -> None:
    """One line per result: the headline numbers of many runs side by side."""
    from referee.eval.report import read_result

    header = ["dataset", "detector", "split", "rows", "category AUPRC", "macro AUPRC", "micro F1", "micro FPR",
              "any-unsafe AUPRC", "any-unsafe recall", "any-unsafe FPR"]
    lines: list[list[str]] = []
    for path in results:
        try:
            r = read_result(path)
        except RefereeError as exc:
            raise _fail(exc) from exc
        met = r["metrics"]
        per_cat = ", ".join(f"{c} {_f(v['auprc']['value'], 2)}" for c, v in met["per_category"].items()
                            if v["auprc"]["value"] is not None)
        recall_only = ", ".join(f"{c} R={_f(v['recall']['value'], 2)}" for c, v in met["per_category"].items()
                                if v["n"] and v["auprc"]["value"] is None and v["positives"])
        any_view = met["any_unsafe"]
        lines.append([
            Path(r["dataset"]["path"] or path).stem, f"{r['detector'].get('name')}", str(r["dataset"]["split"]),
            str(r["dataset"]["rows"]), per_cat or recall_only or "–", _f(met["macro"]["auprc"]["value"]),
            _f((met["micro"].get("f1") or {}).get("value")), _f((met["micro"].get("fpr") or {}).get("value")),
            _f(any_view["auprc"]["value"]),
            _f(any_view["recall"]["value"]) if any_view["n"] else "–",
            _f(any_view["fpr"]["value"]) if any_view["n"] else "–",
        ])
    table = Table(title="Evaluation summary")
    for col in header:
        table.add_column(col, justify="left" if col in ("dataset", "detector", "split", "category AUPRC")
                         else "right")
    for line in lines:
        table.add_row(*line)
    _out.print(table)
    if markdown:
        md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        md += ["| " + " | ".join(line) + " |" for line in lines]
        markdown.write_text("\n".join(md) + "\n", encoding="utf-8")


@eval_app.command("suite")
def suite(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="YAML suite of policy test cases.")],
    policy_path: Annotated[Path, typer.Option("--policy", help="Policy to run the cases under.")] = DEFAULT_POLICY,
    detector: Annotated[list[str] | None, typer.Option(help="Only these detectors (repeatable).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the results JSON here.")] = None,
) -> None:
    """Run a functional suite (text, surface, country -> expected action/categories) through the engine."""
    from referee.eval.functional import run_suite
    from referee.policy import load_policy

    try:
        result = run_suite(path, load_policy(policy_path), detector, registry=registry_of(ctx))
    except RefereeError as exc:
        raise _fail(exc) from exc
    table = Table(title=f"{path}: {result['passed']}/{result['n']} passed "
                        f"({', '.join(f'{k} {v}' for k, v in result['detector_versions'].items())})")
    for col in ("", "case", "surface", "expected", "got"):
        table.add_column(col)
    for c in result["cases"]:
        expected = c["expect"] or ""
        if c["expect_categories"] is not None:
            expected += f" {c['expect_categories']}"
        got = f"{c['action']} {c['categories']}"
        table.add_row(Text("✓", style="green") if c["passed"] else Text("✗", style="red"), c["name"][:60],
                      c["surface"] + (f"/{c['country']}" if c["country"] else ""), expected, got)
    _out.print(table)
    if out:
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if result["passed"] < result["n"]:
        raise typer.Exit(code=1)


@eval_app.command("loso")
def loso_cmd(
    shared: Annotated[Path, typer.Option(help="The shared datasets folder.")] = Path("../shared/datasets"),
    policy_path: Annotated[Path, typer.Option("--policy", help="Policy: lexicon baseline, rules for the "
                                                                "false-positive tests, policy examples.")]
    = DEFAULT_POLICY,
    model: Annotated[Path | None, typer.Option(help="Model directory for the false-positive tests "
                                                    "(default: models/default when built; 'none': skip them).")]
    = None,
    mix: Annotated[str, typer.Option(help="Training mix: v1 (the shipped default model's), v2, "
                                          "v2-no-spans.")] = "v1",
    universe: Annotated[str | None, typer.Option(help="Also hold out the sources of this mix (default v2: "
                                                      "every trainable shared dataset), so two mixes are "
                                                      "compared on the same held-out sources.")] = "v2",
    held_out: Annotated[list[str] | None, typer.Option("--held-out", help="Only these sources (repeatable).")]
    = None,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 13,
    out: Annotated[Path, typer.Option(help="Folder for loso.json and loso.md.")] = Path("reports/loso"),
    hidden: Annotated[int, typer.Option(min=0, max=4096, help="Head width (0: linear).")] = 256,
    lr: Annotated[float, typer.Option(min=1e-5, max=1.0, help="Head learning rate.")] = 2e-3,
    source_balance: Annotated[float, typer.Option(min=0.0, max=1.0, help="Row weight n_source ** -x.")] = 0.0,
) -> None:
    """Leave-one-source-out table and benign look-alike false-positive tests, beside
    alt-profanity-check and the lexicon, in one run (docs/evaluation.md)."""
    from referee.eval.corpus import MIXES
    from referee.eval import loso

    if mix not in MIXES or (universe is not None and universe not in MIXES):
        raise _fail(ConfigError(f"--mix/--universe: unknown mix. Available: {', '.join(MIXES)}"))
    if not shared.is_dir():
        raise _fail(ConfigError(f"--shared: {shared} is not a folder; pass the folder holding the datasets"))
    if model is None and (Path("models/default") / "model.int8.onnx").exists():
        model = Path("models/default")
    elif model is not None and str(model) == "none":
        model = None  # the table only, no false-positive tests
    try:
        result = loso.run(shared, policy_path, model, MIXES[mix], MIXES[universe] if universe else None,
                          held_out, seed, progress=lambda m: _err.print(m),
                          config=loso.head_config(hidden, lr, source_balance))
    except RefereeError as exc:
        raise _fail(exc) from exc
    out.mkdir(parents=True, exist_ok=True)
    (out / "loso.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    text = loso.markdown(result)
    (out / "loso.md").write_text(text, encoding="utf-8")
    _out.print(text)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app."""
    app.add_typer(eval_app, name="eval")
