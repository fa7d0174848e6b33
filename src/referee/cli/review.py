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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import typer

from referee.errors import RefereeError
from referee.eval.datasets import LABEL_KEYS
from referee.policy import Policy
from referee.records.accounts import AccountBook
from referee.records.agreement import agreement, automated_precision
from referee.records.labels import export_labels
from referee.records.notices import list_notices, mark_communicated, outcomes, route_pending, settle
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
    register_accounts(app)


def _fail(exc: RefereeError) -> typer.Exit:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


_Opened = TypeVar("_Opened", ReviewDesk, AccountBook)


@contextmanager
def _opened(kind: Callable[[Store, Policy], _Opened], db_url: str | None, policy: Path | None) -> Iterator[_Opened]:
    """A desk or book over the store and policy the options (else the settings) name, for one command.

    The store is closed however the command ends; a RefereeError, from opening or from the
    command's work, is then printed and ends the command with exit code 2.
    """
    try:
        settings = Settings()
        opened = kind(Store(db_url or settings.db_url), Policy.from_file(policy or settings.policy))
        try:
            yield opened
        finally:
            opened.store.close()
    except RefereeError as exc:
        raise _fail(exc) from exc


@review_app.command("sync")
def sync(db_url: DbUrl = None, policy: PolicyPath = None) -> None:
    """Queue the held decisions (and the policy's QA share) recorded since the last sync."""
    with _opened(ReviewDesk, db_url, policy) as desk:
        made = desk.sync()
    typer.echo(f"queued {len(made)} task(s)")


@review_app.command("queues")
def queues(db_url: DbUrl = None, policy: PolicyPath = None) -> None:
    """Open, claimed, overdue and done tasks per queue."""
    with _opened(ReviewDesk, db_url, policy) as desk:
        stats = desk.stats()
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
    with _opened(ReviewDesk, db_url, policy) as desk:
        made = desk.sample(chosen, n, queue=queue)
    typer.echo(f"queued {len(made)} item(s) for review ({strategy})")


@review_app.command("agreement")
def show_agreement(db_url: DbUrl = None, policy: PolicyPath = None) -> None:
    """Inter-reviewer agreement and the precision of automated decisions, as JSON."""
    with _opened(ReviewDesk, db_url, policy) as desk:
        a = agreement(desk)
        p = automated_precision(desk)
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
    with _opened(ReviewDesk, db_url, policy) as desk:
        result = export_labels(desk, LABEL_KEYS, since=start)
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
        with Store(db_url or Settings().db_url) as store:
            r = add_reviewer(store, reviewer_id, password, queue, senior=senior)
    except RefereeError as exc:
        raise _fail(exc) from exc
    typer.echo(f"reviewer {r.reviewer_id}: queues {', '.join(r.queues)}{' (senior)' if r.senior else ''}")


# -- accounts and notices (#14, #15) -----------------------------------------------------
accounts_app = typer.Typer(name="accounts", help="Account actions from strikes: sync, show, the outbox.",
                           no_args_is_help=True)
notices_app = typer.Typer(name="notices", help="DSA Art. 16 notices: list, route, outcomes for notifiers.",
                          no_args_is_help=True)


def register_accounts(app: typer.Typer) -> None:
    app.add_typer(accounts_app, name="accounts")
    app.add_typer(notices_app, name="notices")


@accounts_app.command("sync")
def accounts_sync(db_url: DbUrl = None, policy: PolicyPath = None) -> None:
    """Recompute the standing of the authors the log's new records touch; print the records written."""
    with _opened(AccountBook, db_url, policy) as book:
        made = book.sync()
    for a in made:
        typer.echo(a.model_dump_json())
    typer.echo(f"{len(made)} account action(s) recorded", err=True)


@accounts_app.command("show")
def accounts_show(author_id: Annotated[str, typer.Argument(help="The author (ContentItem.author_id).")],
                  db_url: DbUrl = None, policy: PolicyPath = None) -> None:
    """An author's strike points, the account action in force and every account action, as JSON."""
    with _opened(AccountBook, db_url, policy) as book:
        book.sync()
        typer.echo(book.standing(author_id).model_dump_json(indent=2))


@accounts_app.command("outbox")
def accounts_outbox(after: Annotated[int, typer.Option(min=0, help="The last seq the platform applied.")] = 0,
                    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Most records to print.")] = 1000,
                    db_url: DbUrl = None, policy: PolicyPath = None) -> None:
    """Account actions after ``--after``, one JSON line each, in the order they were recorded."""
    with _opened(AccountBook, db_url, policy) as book:
        book.sync()
        for a in book.outbox(after, limit):
            typer.echo(a.model_dump_json())


@notices_app.command("list")
def notices_list(status: Annotated[str | None, typer.Option(help="unrouted, open or decided.")] = None,
                 db_url: DbUrl = None, policy: PolicyPath = None) -> None:
    """Notices, oldest first, one JSON line each (without the notifier's contact)."""
    with _opened(ReviewDesk, db_url, policy) as desk:
        settle(desk)
        for n in list_notices(desk, status=status):
            typer.echo(n.model_dump_json(exclude={"notifier_contact"}))


@notices_app.command("route")
def notices_route(notice: Annotated[str | None, typer.Option(help="A URL-only notice to name the item of.")] = None,
                  item: Annotated[str | None, typer.Option(help="The item that notice is about.")] = None,
                  db_url: DbUrl = None, policy: PolicyPath = None) -> None:
    """Queue for review the unrouted notices whose item referee now knows (or name one's item)."""
    if (notice is None) != (item is None):
        typer.secho("error: --notice and --item go together", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    with _opened(ReviewDesk, db_url, policy) as desk:
        routed = route_pending(desk, item_id=item, notice_id=notice)
    typer.echo(f"routed {len(routed)} notice(s)")


@notices_app.command("outcomes")
def notices_outcomes(mark_sent: Annotated[bool, typer.Option(
                         "--mark-sent", help="Record that these notifiers were told (after sending).")] = False,
                     db_url: DbUrl = None, policy: PolicyPath = None) -> None:
    """Decided notices whose notifier was not told yet: one JSON line each, with the contact to tell."""
    with _opened(ReviewDesk, db_url, policy) as desk:
        pending = outcomes(desk)
        for n in pending:
            typer.echo(json.dumps({"notice_id": n.notice_id, "contact": n.notifier_contact,
                                   "outcome": n.outcome, "action": n.outcome_action,
                                   "decision_id": n.outcome_decision_id, "decided_at": n.decided_at}))
        if mark_sent:
            mark_communicated(desk, [n.notice_id for n in pending])
