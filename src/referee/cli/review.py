"""``referee review``, ``referee labels``, ``referee reviewers``: human review from the command line.

- ``review sync``: queue the held decisions (and the QA sample) the log has gained since the last sync;
- ``review queues``: each queue's open, claimed, overdue and done counts;
- ``review sample --strategy uncertainty|disagreement|random --n N``: active learning (QA tasks);
- ``review agreement``: kappa overall, per category and per reviewer; precision of automated decisions;
- ``labels export --since DATE --out FILE``: reviewer and appeal outcomes as a referee dataset (JSONL);
- ``reviewers add ID --queue Q ... [--senior]``: a console account (password from the prompt or stdin).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Literal

import typer

from referee.errors import RefereeError
from referee.eval.datasets import LABEL_KEYS
from referee.policy import Policy
from referee.records.agreement import agreement, automated_precision
from referee.records.labels import export_labels
from referee.records.review import ReviewDesk
from referee.records.reviewers import add_reviewer
from referee.settings import Settings
from referee.store.sql.store import Store

review_app = typer.Typer(name="review", help="Human review queues: sync, counts, QA samples, agreement.",
                         no_args_is_help=True)
labels_app = typer.Typer(name="labels", help="Reviewer and appeal outcomes as training labels.", no_args_is_help=True)
reviewers_app = typer.Typer(name="reviewers", help="Reviewer console accounts.", no_args_is_help=True)

DbUrl = Annotated[str | None, typer.Option("--db-url", help="SQLAlchemy URL of the store [env REFEREE_DB_URL].")]
PolicyPath = Annotated[Path | None, typer.Option("--policy", help="Policy YAML [env REFEREE_POLICY].")]


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
    app.add_typer(labels_app, name="labels")
    app.add_typer(reviewers_app, name="reviewers")


def _fail(exc: RefereeError) -> typer.Exit:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


def _desk(db_url: str | None, policy: Path | None) -> ReviewDesk:
    settings = Settings()
    return ReviewDesk(Store(db_url or settings.db_url), Policy.from_file(policy or settings.policy))


@review_app.command("sync")
def sync(db_url: DbUrl = None, policy: PolicyPath = None) -> None:
    """Queue the held decisions (and the policy's QA share) recorded since the last sync."""
    try:
        desk = _desk(db_url, policy)
        try:
            made = desk.sync()
        finally:
            desk.store.close()
    except RefereeError as exc:
        raise _fail(exc) from exc
    typer.echo(f"queued {len(made)} task(s)")


@review_app.command("queues")
def queues(db_url: DbUrl = None, policy: PolicyPath = None) -> None:
    """Open, claimed, overdue and done tasks per queue."""
    try:
        desk = _desk(db_url, policy)
        try:
            stats = desk.stats()
        finally:
            desk.store.close()
    except RefereeError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{'queue':<16}{'open':>6}{'claimed':>9}{'overdue':>9}{'done':>7}{'sla_h':>7}")
    for s in stats:
        typer.echo(f"{s.queue:<16}{s.open:>6}{s.claimed:>9}{s.overdue:>9}{s.done:>7}{s.sla_hours:>7g}")


@review_app.command("sample")
def sample(
    strategy: Annotated[str, typer.Option("--strategy", help="uncertainty | disagreement | random")] = "uncertainty",
    n: Annotated[int, typer.Option("--n", min=1, help="How many items to queue.")] = 50,
    queue: Annotated[str | None, typer.Option("--queue", help="Queue for the samples (default: routed).")] = None,
    db_url: DbUrl = None, policy: PolicyPath = None,
) -> None:
    """Queue for double review the automated decisions whose labels would help the model most."""
    if strategy not in ("uncertainty", "disagreement", "random"):
        typer.secho(f"error: --strategy must be uncertainty, disagreement or random, got {strategy!r}",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    chosen: Literal["uncertainty", "disagreement", "random"] = strategy  # type: ignore[assignment]
    try:
        desk = _desk(db_url, policy)
        try:
            made = desk.sample(chosen, n, queue=queue)
        finally:
            desk.store.close()
    except RefereeError as exc:
        raise _fail(exc) from exc
    typer.echo(f"queued {len(made)} item(s) for review ({strategy})")


@review_app.command("agreement")
def show_agreement(db_url: DbUrl = None, policy: PolicyPath = None) -> None:
    """Inter-reviewer agreement and the precision of automated decisions, as JSON."""
    try:
        desk = _desk(db_url, policy)
        try:
            a = agreement(desk)
            p = automated_precision(desk)
        finally:
            desk.store.close()
    except RefereeError as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps({
        "pairs": a.pairs, "kappa": a.kappa, "alpha": a.alpha, "per_category": a.per_category,
        "per_reviewer": a.per_reviewer,
        "automated_precision": [vars(x) for x in p],
    }, indent=2))


def _since(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        typer.secho(f"error: --since must be an ISO date or time (2026-11-01, 2026-11-01T12:00Z), got {value!r}",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


@labels_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="JSONL file to write (referee dataset format).")],
    since: Annotated[str | None, typer.Option("--since", help="Only verdicts from this ISO date/time on.")] = None,
    db_url: DbUrl = None, policy: PolicyPath = None,
) -> None:
    """Write reviewer and appeal outcomes as labelled rows: latest verdict wins, conflicts flagged."""
    start = _since(since)
    try:
        desk = _desk(db_url, policy)
        try:
            result = export_labels(desk, LABEL_KEYS, since=start)
        finally:
            desk.store.close()
    except RefereeError as exc:
        raise _fail(exc) from exc
    with out.open("w", encoding="utf-8") as f:
        for row in result.rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    typer.echo(f"wrote {len(result.rows)} row(s) to {out} ({result.conflicts} conflict(s) flagged, "
               f"{result.erased} erased item(s) left out)")


@reviewers_app.command("add")
def add(
    reviewer_id: Annotated[str, typer.Argument(help="The reviewer's login.")],
    queue: Annotated[list[str], typer.Option("--queue", help="A queue they may see (repeat; '*' for all).")],
    senior: Annotated[bool, typer.Option("--senior", help="May take the senior queue too.")] = False,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    db_url: DbUrl = None,
) -> None:
    """Create (or update) a console account."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt(
        "password", hide_input=True, confirmation_prompt=True)
    try:
        store = Store(db_url or Settings().db_url)
        try:
            r = add_reviewer(store, reviewer_id, password, queue, senior=senior)
        finally:
            store.close()
    except RefereeError as exc:
        raise _fail(exc) from exc
    typer.echo(f"reviewer {r.reviewer_id}: queues {', '.join(r.queues)}{' (senior)' if r.senior else ''}")
