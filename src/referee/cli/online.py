"""``referee shadow`` and ``referee experiment``: candidates in shadow, experiments on live traffic.

- ``shadow report --candidate X [--since 7d] [--until ISO] [--sample N] [--json FILE]``: agreement with
  the champion, action-rate deltas per surface, country and category, items whose action would change;
- ``shadow candidates``: the candidates with shadow decisions in the store;
- ``experiment moderate CONFIG INPUT``: moderate a file of items under an experiment (each item by its
  unit's arm, exposures logged), one JSON decision per line;
- ``experiment report NAME [--since] [--until] [--html FILE] [--json FILE]``: per-arm metrics,
  differences against control with intervals, the sample-ratio check; exit 1 on a sample-ratio mismatch.

See docs/online.md.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from referee.build import EngineConfig, build_engine
from referee.engine.experiment import Experiment
from referee.errors import ConfigError, InputError, RefereeError
from referee.ingest import read_items
from referee.model import ContentItem
from referee.online.experiments import ExperimentRunner, experiment_report
from referee.online.html import write_experiment_html
from referee.online.shadow import shadow_store
from referee.online.shadow_report import shadow_report
from referee.settings import Settings
from referee.store import Store
from referee.times import parse_optional

shadow_app = typer.Typer(name="shadow", help="Candidates in shadow beside the champion (never enforced).",
                         no_args_is_help=True)
experiment_app = typer.Typer(name="experiment", help="Experiments: arms by unit, exposures, per-arm metrics.",
                             no_args_is_help=True)

DbUrl = Annotated[str | None, typer.Option("--db-url", help="SQLAlchemy URL of the store [env REFEREE_DB_URL].")]
Since = Annotated[str | None, typer.Option("--since", help="ISO time (2026-11-01T00:00) or a duration: 24h, 7d.")]
Until = Annotated[str | None, typer.Option("--until", help="ISO time or duration back from now; now if omitted.")]
JsonOut = Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON to this file.")]


def register(app: typer.Typer) -> None:
    app.add_typer(shadow_app, name="shadow")
    app.add_typer(experiment_app, name="experiment")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _when(option: str, text: str | None) -> datetime | None:
    try:
        return parse_optional(text)
    except InputError as exc:
        raise _fail(f"{option}: {exc.reason}") from None


def _store(db_url: str | None) -> Store:
    return Store(db_url or Settings().db_url)


@shadow_app.command("report")
def shadow_report_command(
    candidate: Annotated[str, typer.Option("--candidate", help="The candidate's name (its config file's stem).")],
    since: Since = None, until: Until = None,
    sample: Annotated[int, typer.Option("--sample", min=0, max=10_000, help="Changed items to list.")] = 20,
    json_out: JsonOut = None, db_url: DbUrl = None,
) -> None:
    """How the candidate would have decided, against the champion, over the window."""
    start, end = _when("--since", since), _when("--until", until)
    try:
        with _store(db_url) as store:
            report = shadow_report(store, candidate, since=start, until=end, sample=sample)
            known = shadow_store(store).shadow_candidates() if not report.items else []
    except RefereeError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(report.text())
    if not report.items and known and candidate not in known:
        typer.echo(f"(candidates with shadow decisions: {', '.join(known)})", err=True)
    if json_out is not None:
        json_out.write_text(report.model_dump_json(indent=2), encoding="utf-8")


@shadow_app.command("candidates")
def shadow_candidates(db_url: DbUrl = None) -> None:
    """The candidates with shadow decisions in the store, one a line."""
    try:
        with _store(db_url) as store:
            for name in shadow_store(store).shadow_candidates():
                typer.echo(name)
    except RefereeError as exc:
        raise _fail(str(exc)) from exc


def _experiment(path: Path) -> Experiment:
    try:
        return Experiment.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise _fail(f"cannot read experiment config {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise _fail(f"experiment config {path} is not JSON: {exc}") from exc
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "(the file)"
        raise _fail(f"experiment config {path}: {where}: {problem['msg']}") from exc


@experiment_app.command("moderate")
def experiment_moderate(
    config: Annotated[Path, typer.Argument(help="The experiment as JSON: name, salt, unit, arms.")],
    input: Annotated[str, typer.Argument(help="JSONL or CSV file of items, or '-' for JSONL on stdin.")],
    policy: Annotated[Path | None, typer.Option("--policy", help="The base policy [env REFEREE_POLICY].")] = None,
    db_url: DbUrl = None,
    detectors: Annotated[str | None, typer.Option("--detectors", help="Only these detectors (comma-separated), "
                                                  "for every arm that does not name its own.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=4096, help="Items per engine call.")] = 64,
) -> None:
    """Moderate items under an experiment: each by its unit's arm; one JSON decision per line on stdout."""
    experiment = _experiment(config)
    settings = Settings()
    base: EngineConfig = settings.engine_config(detectors=detectors, batch_size=batch_size).model_copy(update={
        "policy": policy or settings.policy, "store_url": db_url or settings.db_url})
    try:
        results = list(read_items(sys.stdin.buffer if input == "-" else input))
        with Store(base.store_url or "") as store:
            with ExperimentRunner(experiment, base, store, build=build_engine) as runner:
                items = [r for r in results if isinstance(r, ContentItem)]
                for start in range(0, len(items), batch_size):
                    for decision in runner.moderate_many(items[start:start + batch_size]):
                        typer.echo(decision.model_dump_json())
    except RefereeError as exc:
        raise _fail(str(exc)) from exc
    errors = [r for r in results if isinstance(r, InputError)]
    for e in errors:
        typer.echo(f"skipped {e}", err=True)
    if errors:
        raise typer.Exit(1)


@experiment_app.command("report")
def experiment_report_command(
    name: Annotated[str, typer.Argument(help="The experiment's name.")],
    since: Since = None, until: Until = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML page with charts here.")] = None,
    json_out: JsonOut = None, db_url: DbUrl = None,
) -> None:
    """Per-arm metrics, differences against control, the sample-ratio check (exit 1 on a mismatch)."""
    start, end = _when("--since", since), _when("--until", until)
    try:
        with _store(db_url) as store:
            report = experiment_report(store, name, since=start, until=end)
    except (RefereeError, ConfigError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(report.text())
    if html is not None:
        write_experiment_html(report, html)
        typer.echo(f"wrote {html}", err=True)
    if json_out is not None:
        json_out.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    if report.sample_ratio.mismatch:
        raise typer.Exit(1)
