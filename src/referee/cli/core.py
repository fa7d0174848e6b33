"""`referee moderate`, `referee policy lint|test|diff`, `referee decisions show|list`.

Wiring only: read arguments and settings, build objects, call the library,
print. Everything printed for machines goes to stdout (JSONL); progress,
tables and errors go to stderr so pipes stay clean.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from referee.build import build_engine
from referee.cli.detectors import registry_of
from referee.engine import Engine
from referee.engine.suite import run_cases
from referee.errors import InputError, RefereeError
from referee.ingest import read_items
from referee.model import Action, ContentItem
from referee.policy import Policy
from referee.policy.diff import diff as policy_diff
from referee.policy.lint import lint_file
from referee.settings import Settings
from referee.store import DecisionStore
from referee.times import parse_when

err = Console(stderr=True)

PolicyOpt = Annotated[Optional[Path], typer.Option("--policy", "-p", help="Policy YAML (default: $REFEREE_POLICY or policies/default.yaml).")]
DbOpt = Annotated[Optional[str], typer.Option("--db-url", help="Decision store URL (default: $REFEREE_DB_URL or sqlite:///referee.db).")]
DetectorsOpt = Annotated[Optional[str], typer.Option("--detectors", help="Comma-separated subset of the policy's detectors.")]

#: Bounds of the numeric options: wide enough for real use, narrow enough to refuse typos.
MAX_BATCH_SIZE = 4096  # EngineConfig.batch_size's bound
MAX_LIST_LIMIT = 10_000

policy_app = typer.Typer(help="Lint, test and diff policy files.", no_args_is_help=True)
decisions_app = typer.Typer(help="Read stored decisions.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("moderate")(moderate)
    app.add_typer(policy_app, name="policy")
    app.add_typer(decisions_app, name="decisions")


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` (user text escaped, never read as Rich markup) and the exit to raise."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def _settings(policy: Path | None, db_url: str | None) -> Settings:
    settings = Settings()
    if policy is not None:
        settings = settings.model_copy(update={"policy": policy})
    if db_url is not None:
        settings = settings.model_copy(update={"db_url": db_url})
    return settings


def moderate(
    ctx: typer.Context,
    input: Annotated[str, typer.Argument(help="JSONL or CSV file of items, or '-' for JSONL on stdin.")],
    policy: PolicyOpt = None,
    db_url: DbOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write decisions here instead of stdout.")] = None,
    store: Annotated[bool, typer.Option("--store/--no-store", help="Record decisions in the decision store.")] = True,
    detectors: DetectorsOpt = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="jsonl or csv (default: from the suffix).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=MAX_BATCH_SIZE, help="Items per detector batch.")] = 64,
) -> None:
    """Moderate items and write one JSON decision per line."""
    settings = _settings(policy, db_url)
    try:
        engine = build_engine(settings.engine_config(store=store, detectors=detectors, batch_size=batch_size),
                              registry_of(ctx))
        source = sys.stdin.buffer if input == "-" else input
        results = list(read_items(source, fmt))
    except RefereeError as exc:
        raise fail(str(exc)) from exc

    items: list[ContentItem] = []
    errors = [r for r in results if isinstance(r, InputError)]
    for r in results:
        if isinstance(r, ContentItem):
            try:  # a media file that cannot be read is this item's problem, not the run's
                items.append(engine.media.resolve(r))
            except InputError as exc:
                errors.append(InputError(exc.reason, f"item {r.id!r} {exc.where or ''}".strip()))
    sink_out = out.open("w", encoding="utf-8") if out else sys.stdout
    actions: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    try:
        with Progress(TextColumn("moderating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, disable=len(items) < 500 or not err.is_terminal, transient=True) as progress:
            task = progress.add_task("items", total=len(items))
            for start in range(0, len(items), batch_size):
                for decision in engine.moderate_many(items[start : start + batch_size]):
                    sink_out.write(decision.model_dump_json() + "\n")
                    actions[decision.action.value] += 1
                    categories.update(decision.categories)
                progress.advance(task, min(batch_size, len(items) - start))
    finally:
        engine.close()
        if out:
            sink_out.close()

    for e in errors:
        err.print(f"[yellow]skipped[/yellow] {escape(str(e))}", highlight=False)
    _summary(len(items), len(errors), actions, categories, engine)
    if errors:
        raise typer.Exit(1)


def _summary(n: int, n_bad: int, actions: Counter[str], categories: Counter[str], engine: Engine) -> None:
    table = Table(title=f"{n} items moderated, {n_bad} rejected")
    table.add_column("action")
    table.add_column("items", justify="right")
    table.add_column("share", justify="right")
    for action in Action:
        count = actions.get(action.value, 0)
        if count:
            table.add_row(action.value, str(count), f"{count / max(n, 1):.1%}")
    err.print(table)
    versions = ", ".join(f"{k} {v}" for k, v in engine.detector_versions.items()) or "none"
    err.print(escape(f"policy {engine.policy.id}@{engine.policy.version}; detectors: {versions}"), highlight=False)
    if categories:
        err.print(escape("categories: " + ", ".join(f"{c}={k}" for c, k in categories.most_common())),
                  highlight=False)


# -- policy -------------------------------------------------------------------
@policy_app.command("lint")
def lint_cmd(ctx: typer.Context, file: Annotated[Path, typer.Argument(help="Policy YAML file.")]) -> None:
    """Report every problem in a policy file with its line and a fix; exit 1 if any."""
    problems = lint_file(file, registry_of(ctx))
    for p in problems:
        typer.echo(str(p))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        err.print(f"[red]{len(errors)} error(s)[/red] in {escape(str(file))}", highlight=False)
        raise typer.Exit(1)
    err.print(f"[green]ok[/green] {escape(str(file))}", highlight=False)


@policy_app.command("test")
def test_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Policy YAML file; its tests and tests_file are run.")],
    detectors: DetectorsOpt = None,
) -> None:
    """Run the policy's test cases (text + surface + country -> expected action)."""
    try:
        pol = Policy.from_file(file)
        cases = pol.tests()
        only = [d.strip() for d in detectors.split(",") if d.strip()] if detectors is not None else None
        with Engine.from_policy(pol, only=only, registry=registry_of(ctx)) as engine:
            results = run_cases(engine, cases)
    except RefereeError as exc:
        raise fail(str(exc)) from exc
    if not results:
        raise fail(f"{file} has no tests: add a 'tests:' list or a 'tests_file'")
    failed = [r for r in results if not r.passed]
    for r in results:
        mark = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
        where = f"{r.case.surface}/{r.case.country or '--'}"
        err.print(f"{mark} {escape(f'{where:<24} {r.label!r}: {r.why}')}", highlight=False)
    err.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


@policy_app.command("diff")
def diff_cmd(old: Path, new: Path) -> None:
    """Show which categories, rules and thresholds changed between two policy files."""
    try:
        changes = policy_diff(Policy.from_file(old), Policy.from_file(new))
    except RefereeError as exc:
        raise fail(str(exc)) from exc
    if not changes:
        typer.echo("no changes")
    for change in changes:
        typer.echo(str(change))


# -- decisions ----------------------------------------------------------------
@decisions_app.command("show")
def show_cmd(decision_id: str, db_url: DbOpt = None) -> None:
    """Print one stored decision as JSON."""
    try:
        decision = DecisionStore(_settings(None, db_url).db_url).get_decision(decision_id)
    except RefereeError as exc:
        raise fail(str(exc)) from exc
    if decision is None:
        raise fail(f"no decision {decision_id!r} in the store", 1)
    typer.echo(json.dumps(decision.model_dump(mode="json"), indent=2, ensure_ascii=False))


@decisions_app.command("history")
def history_cmd(item_id: str, db_url: DbOpt = None) -> None:
    """Every decision about an item, oldest first, as JSON lines; the head is marked."""
    try:
        store = DecisionStore(_settings(None, db_url).db_url)
        records = store.log.history(item_id)
        head = store.log.head(item_id)
    except RefereeError as exc:
        raise fail(str(exc)) from exc
    if not records:
        raise fail(f"no decision about item {item_id!r} in the store", 1)
    for record in records:
        d = record.decision
        typer.echo(json.dumps({"seq": record.seq, "decision_id": d.decision_id, "source": d.source,
                               "action": d.action.value, "supersedes": d.supersedes, "provisional": d.provisional,
                               "head": head is not None and d.decision_id == head.decision_id,
                               "created_at": d.created_at.isoformat()}))


@decisions_app.command("list")
def list_cmd(
    since: Annotated[Optional[str], typer.Option(help="ISO time (2026-11-01T00:00) or a duration like 24h, 7d.")] = None,
    action: Annotated[Optional[str], typer.Option(help="Only decisions with this action.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIST_LIMIT, help="Most decisions to print.")] = 100,
    db_url: DbOpt = None,
) -> None:
    """List recent decisions, newest first, as JSON lines."""
    try:
        when = parse_when(since) if since else None
    except InputError as exc:
        raise fail(f"--since: {exc.reason}") from exc
    actions = [a.value for a in Action]
    if action is not None and action not in actions:
        raise fail(f"--action: unknown action {action!r}; choose one of {', '.join(actions)}")
    try:
        found = DecisionStore(_settings(None, db_url).db_url).list_decisions(since=when, action=action, limit=limit)
    except RefereeError as exc:
        raise fail(str(exc)) from exc
    for d in found:
        typer.echo(json.dumps({"decision_id": d.decision_id, "item_id": d.item_id, "action": d.action.value,
                               "categories": list(d.categories), "created_at": d.created_at.isoformat()}))
