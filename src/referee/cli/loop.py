"""``referee loop`` and ``referee quality``: the improvement loop and online quality estimates.

- ``loop run``: labels -> training set -> candidate -> gate -> shadow (docs/online-quality.md);
- ``loop promote RUN_ID``: the run's candidate becomes the champion, after enough shadow decisions;
- ``loop log``: every step of every run, with its data hashes;
- ``quality precision``: precision of automated actions from the random QA share;
- ``quality sample``: a stratified labelling sample of a window (and ``--enqueue`` it for labels);
- ``quality prevalence SAMPLE``: violating items per 10,000 (and recall) per surface and category;
- ``quality drift``: score and language-mix shift, current window against a reference one.

The ``loop`` commands import ``referee.online.loop`` when they run: it pulls in the evaluation
stack (scikit-learn, SciPy: seconds), which every other command, and the log follower that
``serve`` starts, would otherwise pay for at start.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from referee.errors import InputError, RefereeError
from referee.online import drift as drift_mod
from referee.online import quality
from referee.online.shadow import shadow_store
from referee.policy import Policy
from referee.records.review import ReviewDesk
from referee.settings import Settings
from referee.store.sql.store import Store
from referee.times import parse_optional

loop_app = typer.Typer(name="loop", help="The improvement loop: labels -> candidate -> gate -> shadow -> promote.",
                       no_args_is_help=True)
quality_app = typer.Typer(name="quality", help="Online quality: precision, prevalence, recall, drift.",
                          no_args_is_help=True)
_out = Console(markup=False)

DbUrl = Annotated[str | None, typer.Option("--db-url", help="SQLAlchemy URL of the store [env REFEREE_DB_URL].")]
PolicyPath = Annotated[Path | None, typer.Option("--policy", help="Policy YAML [env REFEREE_POLICY].")]
Registry = Annotated[Path, typer.Option("--registry", help="The model registry folder.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    app.add_typer(loop_app, name="loop")
    app.add_typer(quality_app, name="quality")


def _fail(exc: RefereeError | ValueError) -> typer.Exit:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


def _when(option: str, text: str | None) -> datetime | None:
    try:
        return parse_optional(text)
    except InputError as exc:
        raise typer.BadParameter(exc.reason, param_hint=option) from None


def _desk(db_url: str | None, policy: Path | None) -> ReviewDesk:
    settings = Settings()
    return ReviewDesk(Store(db_url or settings.db_url), Policy.from_file(policy or settings.policy))


def _policy_path(policy: Path | None) -> Path:
    return policy or Path(Settings().policy)


# -- loop ----------------------------------------------------------------------------------------
@loop_app.command("run")
def run_cmd(
    eval_set: Annotated[list[Path], typer.Option("--eval-set", help="A fixed evaluation set (repeatable).")],
    registry: Registry = Path("models"),
    base_train: Annotated[Path | None, typer.Option(help="The champion's training data, kept in the mix.")] = None,
    base_dev: Annotated[Path | None, typer.Option(help="A fixed dev set (else a share of the pool).")] = None,
    since: Annotated[str | None, typer.Option(help="Only labels from this time (ISO or 30d).")] = None,
    fresh_share: Annotated[float, typer.Option(min=0.0, max=0.9, help="Share of new labels held out.")] = 0.3,
    max_drop: Annotated[float, typer.Option(min=0.0, max=1.0, help="Largest tolerated drop of the metric.")] = 0.01,
    gate_metric: Annotated[str, typer.Option(help="auprc, roc_auc, f1, recall or precision.")] = "auprc",
    min_new_labels: Annotated[int, typer.Option(min=1, help="Fewer new labels: nothing to do.")] = 50,
    n_boot: Annotated[int, typer.Option(min=0, max=10_000, help="Bootstrap resamples of the comparison.")] = 500,
    db_url: DbUrl = None,
    policy: PolicyPath = None,
    as_json: AsJson = False,
) -> None:
    """One run of the loop; safe to schedule (the same inputs answer from the finished run)."""
    start = _when("--since", since)
    from referee.online import loop as loop_mod  # here, not at the top: module docstring
    try:
        config = loop_mod.LoopConfig(registry=registry, policy=_policy_path(policy), eval_sets=tuple(eval_set),
                                     base_train=base_train, base_dev=base_dev,
                                     since=start.timestamp() if start else None, fresh_share=fresh_share,
                                     max_drop=max_drop, gate_metric=gate_metric, min_new_labels=min_new_labels,
                                     n_boot=n_boot)
        desk = _desk(db_url, policy)
        try:
            run = loop_mod.run_loop(config, desk, progress=lambda m: typer.echo(m, err=True))
        finally:
            desk.store.close()
    except RefereeError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(run.model_dump_json(indent=1, exclude={"labels": {"signatures"}}))
        return
    typer.echo(f"{run.run_id}: {run.status}{' (finished before)' if run.reused else ''}")
    for name, e in run.evaluations.items():
        m = e["macro"]
        typer.echo(f"  {name}: {config.gate_metric} champion {m['baseline']:.4f} candidate {m['candidate']:.4f} "
                   f"delta {m['delta']:+.4f} [{m['lo']}, {m['hi']}] failures {len(e['failures'])}")
    if run.shadow:
        typer.echo(f"  in shadow as {run.shadow['candidate']}: start the service with {run.shadow['enable']}")


@loop_app.command("promote")
def promote_cmd(
    run_id: Annotated[str, typer.Argument(help="A finished run whose candidate is in shadow.")],
    registry: Registry = Path("models"),
    min_shadow: Annotated[int, typer.Option(min=0, help="Shadow decisions needed before promotion.")] = 500,
    db_url: DbUrl = None,
    policy: PolicyPath = None,
) -> None:
    """Point the champion alias at the run's candidate (needs its gate passed and shadow decisions)."""
    from referee.online import loop as loop_mod
    try:
        config = loop_mod.LoopConfig(registry=registry, policy=_policy_path(policy), eval_sets=(Path("-"),))
        path = config.loop_dir / "runs" / run_id / loop_mod.RUN_FILE
        run = loop_mod.LoopRun.model_validate_json(path.read_text(encoding="utf-8")) if path.exists() else None
        shadowed, agree = 0, None
        if run is not None and run.shadow:
            with Store(db_url or Settings().db_url) as store:
                rows = shadow_store(store).shadow_decisions(run.shadow["candidate"])
            shadowed = len(rows)
            agree = sum(r.decision.action == r.champion_action for r in rows) / shadowed if shadowed else None
        alias = loop_mod.promote(config, run_id, shadowed, min_shadow, agree)
    except RefereeError as exc:
        raise _fail(exc) from exc
    typer.echo(f"champion -> {run.candidate['name'] if run and run.candidate else '?'} ({alias}); "
               f"{shadowed} shadow decisions, action agreement {agree if agree is None else round(agree, 4)}")


@loop_app.command("log")
def log_cmd(registry: Registry = Path("models"), run_id: Annotated[str | None, typer.Option("--run")] = None) -> None:
    """Every logged step (JSON lines), optionally of one run."""
    from referee.online import loop as loop_mod

    for event in loop_mod.read_log(registry):
        if run_id is None or event.run_id == run_id:
            typer.echo(event.model_dump_json())


# -- quality -------------------------------------------------------------------------------------
@quality_app.command("precision")
def precision_cmd(since: Annotated[str | None, typer.Option(help="Verdicts from (ISO or 7d).")] = None,
                  db_url: DbUrl = None, policy: PolicyPath = None, as_json: AsJson = False) -> None:
    """Precision of automated actions per category and surface, from the random QA share."""
    start = _when("--since", since)
    try:
        desk = _desk(db_url, policy)
        try:
            rows = quality.qa_precision(desk, since=start.timestamp() if start else None)
        finally:
            desk.store.close()
    except RefereeError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps([r.model_dump() for r in rows], indent=1))
        return
    table = Table(title="precision of automated actions (QA share, Wilson 95 %)")
    for col in ("category", "surface", "reviewed", "kept", "precision", "95 % CI"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.category, r.surface, str(r.reviewed), str(r.kept), f"{r.precision:.3f}",
                      f"{r.low:.3f}-{r.high:.3f}")
    _out.print(table)


@quality_app.command("sample")
def sample_cmd(
    out: Annotated[Path, typer.Option("--out", help="Where to write the sample (JSON).")],
    size: Annotated[int, typer.Option(min=1, max=1_000_000, help="Items to label.")] = 500,
    since: Annotated[str | None, typer.Option(help="Window start (ISO or 7d).")] = None,
    until: Annotated[str | None, typer.Option(help="Window end (ISO or 1d).")] = None,
    seed: Annotated[int, typer.Option(min=0)] = 13,
    enqueue: Annotated[bool, typer.Option(help="Queue the items for labels (QA tasks).")] = False,
    queue: Annotated[str | None, typer.Option(help="Review queue for --enqueue (default: routed).")] = None,
    db_url: DbUrl = None,
    policy: PolicyPath = None,
) -> None:
    """Design a stratified labelling sample of a window; its inclusion probabilities go in the file."""
    lo, hi = _when("--since", since), _when("--until", until)
    try:
        desk = _desk(db_url, policy)
        try:
            units = quality.units_from_log(desk.store.log, lo, hi)
            sample = quality.design_sample(units, size=size, seed=seed, since=lo, until=hi)
            quality.write_sample(sample, out)
            queued = quality.send_for_labelling(desk, sample, queue) if enqueue else 0
        finally:
            desk.store.close()
    except RefereeError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{sample.sample_id}: {len(sample.units)} of {sum(s.population for s in sample.strata)} items in "
               f"{len(sample.strata)} strata -> {out}" + (f"; {queued} queued for labels" if enqueue else ""))


def _prevalence_table(prev: list[quality.PrevalenceEstimate], recall: list[quality.RecallEstimate]) -> Table:
    by = {(r.surface, r.category): r for r in recall}
    table = Table(title="violating items per 10,000 (stratified estimate, 95 % CI) and recall of automation")
    for col in ("surface", "category", "items", "labelled", "per 10k", "95 % CI", "recall", "recall CI"):
        table.add_column(col)
    for e in prev:
        p, lo, hi = e.per_10k
        r = by.get((e.surface, e.category))
        rec = "-" if r is None or r.recall is None else f"{r.recall:.2f}"
        rci = "-" if r is None or r.low is None or r.high is None else f"{r.low:.2f}-{r.high:.2f}"
        table.add_row(e.surface, e.category, str(e.population), str(e.labelled), f"{p:.1f}", f"{lo:.1f}-{hi:.1f}",
                      rec, rci)
    return table


@quality_app.command("prevalence")
def prevalence_cmd(sample_file: Annotated[Path, typer.Argument(help="A file `quality sample` wrote.")],
                   db_url: DbUrl = None, policy: PolicyPath = None, as_json: AsJson = False) -> None:
    """Prevalence (violating items per 10,000) and recall per surface and category, from the labels so far."""
    try:
        sample = quality.read_sample(sample_file)
        desk = _desk(db_url, policy)
        try:
            labels = quality.sample_labels(desk, sample)
            categories = desk.policy.categories
        finally:
            desk.store.close()
        prev = quality.estimate_prevalence(sample, labels, categories)
        recall = quality.estimate_recall(sample, labels, categories)
    except RefereeError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps({"sample": sample.sample_id, "labelled": len(labels),
                               "prevalence": [e.model_dump() for e in prev],
                               "recall": [r.model_dump() for r in recall]}, indent=1))
        return
    typer.echo(f"{sample.sample_id}: {len(labels)} of {len(sample.units)} sampled items labelled")
    _out.print(_prevalence_table(prev, recall))


@quality_app.command("drift")
def drift_cmd(
    reference_since: Annotated[str, typer.Option(help="Reference window start (ISO or 14d).")] = "14d",
    reference_until: Annotated[str, typer.Option(help="Reference window end = current start.")] = "7d",
    current_until: Annotated[str | None, typer.Option(help="Current window end (default now).")] = None,
    detector: Annotated[str | None, typer.Option(help="Only this detector's scores.")] = None,
    min_count: Annotated[int, typer.Option(min=1, help="Fewer items per window: insufficient.")] = drift_mod.MIN_COUNT,
    db_url: DbUrl = None,
    as_json: AsJson = False,
) -> None:
    """Score (PSI per category and surface) and language-mix drift; exit 1 on an alert."""
    ref = (_when("--reference-since", reference_since), _when("--reference-until", reference_until))
    cur = (ref[1], _when("--current-until", current_until))
    try:
        with Store(db_url or Settings().db_url) as store:
            report = drift_mod.drift_report(store.log, store.content, ref, cur, detector=detector,
                                            min_count=min_count)
    except RefereeError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(report.model_dump_json(indent=1))
    else:
        table = Table(title=f"drift: PSI (warn > {report.warn}, alert > {report.alert})")
        for col in ("kind", "surface", "category", "reference n", "current n", "PSI", "status"):
            table.add_column(col)
        for r in report.rows:
            table.add_row(r.kind, r.surface, r.category or "-", str(r.reference_n), str(r.current_n),
                          f"{r.psi:.4f}", r.status)
        _out.print(table)
    if report.alerts:
        raise typer.Exit(1)
