"""``referee audit``, ``referee compliance`` and ``referee retention``: the compliance pipeline (wiring only).

- ``audit seal`` / ``audit verify``: the tamper-evident chain over the decision log;
- ``compliance sor export`` / ``compliance sor submit``: DSA statements of reasons;
- ``compliance report``: the transparency report of a period;
- ``retention apply`` / ``retention erase-author``: retention and erasure.

See docs/compliance.md.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from referee.errors import RefereeError
from referee.policy import load_policy
from referee.records.chain import AuditChain
from referee.records.reasons import Statement, Statements, export, read_export
from referee.records.retention import Retention, RetentionJob
from referee.records.submit import Submitter
from referee.records.transparency import TransparencyReport, write_report
from referee.settings import Settings
from referee.store import Store

audit_app = typer.Typer(name="audit", help="The tamper-evident chain over the decision log.", no_args_is_help=True)
compliance_app = typer.Typer(name="compliance", help="DSA statements of reasons and transparency reports.",
                             no_args_is_help=True)
sor_app = typer.Typer(name="sor", help="Statements of reasons: export and submit.", no_args_is_help=True)
retention_app = typer.Typer(name="retention", help="Retention and erasure of user content.", no_args_is_help=True)
compliance_app.add_typer(sor_app, name="sor")

DbUrl = Annotated[str | None, typer.Option("--db-url", help="SQLAlchemy URL of the store [env REFEREE_DB_URL].")]
PolicyOpt = Annotated[Path | None, typer.Option("--policy", help="Policy YAML with a dsa: section [env REFEREE_POLICY].")]


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
    app.add_typer(compliance_app, name="compliance")
    app.add_typer(retention_app, name="retention")


def _fail(exc: Exception, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _store(db_url: str | None) -> Store:
    return Store(db_url or Settings().db_url)


def _date(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a date: write 2026-01-01 or 2026-01-01T00:00:00Z") from exc
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


# -- audit -------------------------------------------------------------------------
KeyEnv = Annotated[str | None, typer.Option("--key-env", help="Environment variable holding the checkpoint key.")]


def _key(key_env: str | None) -> bytes | None:
    if key_env is None:
        return None
    value = os.environ.get(key_env, "")
    if not value:
        raise typer.BadParameter(f"--key-env {key_env}: that environment variable is empty or not set")
    return value.encode()


@audit_app.command("seal")
def seal(db_url: DbUrl = None,
         checkpoint_every: Annotated[int, typer.Option(help="A checkpoint every N links.")] = 100_000,
         key_env: KeyEnv = None) -> None:
    """Link every record after the last sealed one; print the head (publish it)."""
    key = _key(key_env)
    try:
        with _store(db_url) as store:
            result = AuditChain(store.db, checkpoint_every=checkpoint_every, key=key).seal()
    except RefereeError as exc:
        raise _fail(exc) from exc
    typer.echo(f"sealed {result.sealed} record(s); head seq {result.head_seq} hash {result.head_hash} "
               f"({result.checkpoints} checkpoint(s) written)")


@audit_app.command("verify")
def verify(db_url: DbUrl = None,
           from_checkpoint: Annotated[bool, typer.Option(help="Trust the last checkpoint; walk only after it.")] = False,
           expect_head: Annotated[str | None, typer.Option(help="A head hash published earlier.")] = None,
           key_env: KeyEnv = None) -> None:
    """Recompute the chain from the log; exit 1 at the first broken link."""
    key = _key(key_env)
    try:
        with _store(db_url) as store:
            result = AuditChain(store.db, key=key).verify(from_checkpoint=from_checkpoint, expect_head=expect_head)
    except RefereeError as exc:
        raise _fail(exc) from exc
    if result.broken is not None:
        typer.secho(f"BROKEN at seq {result.broken.seq} ({result.broken.kind}): {result.broken.message}",
                    fg=typer.colors.RED, err=True)
        typer.echo(f"{result.checked} link(s) verified before it (from seq {result.from_seq})")
        raise typer.Exit(1)
    typer.echo(f"ok: {result.checked} link(s) verified from seq {result.from_seq}; head seq {result.head_seq} "
               f"hash {result.head_hash}; {result.unsealed} record(s) not sealed yet")


# -- statements of reasons ---------------------------------------------------------
@sor_app.command("export")
def sor_export(out: Annotated[Path, typer.Option("--out", help="JSON lines, one batch of <= 100 a line.")],
               since: Annotated[str | None, typer.Option(help="Decisions made from this date (UTC).")] = None,
               policy: PolicyOpt = None, db_url: DbUrl = None) -> None:
    """Build, validate and write the statements of reasons; invalid ones are listed, not written (exit 1)."""
    try:
        pol = load_policy(str(policy or Settings().policy))
        with _store(db_url) as store:
            result = export(Statements(store.db, store.log, pol), out, since=_date(since))
    except RefereeError as exc:
        raise _fail(exc) from exc
    for err in result.invalid:
        typer.secho(f"invalid: {err}", fg=typer.colors.RED, err=True)
    typer.echo(f"wrote {result.written} statement(s) in {result.batches} batch(es) to {out}"
               + (f"; {len({e.puid for e in result.invalid})} invalid, not written" if result.invalid else ""))
    if result.invalid:
        raise typer.Exit(1)


@sor_app.command("submit")
def sor_submit(endpoint: Annotated[str, typer.Option(help="The API's multiple-statements URL.")],
               token_env: Annotated[str, typer.Option(help="Environment variable holding the API token.")],
               infile: Annotated[Path | None, typer.Option("--in", help="An export file; default: the log.")] = None,
               since: Annotated[str | None, typer.Option(help="Decisions made from this date (UTC).")] = None,
               max_attempts: Annotated[int, typer.Option(help="Tries per batch for 5xx and timeouts.")] = 5,
               retry_failed: Annotated[bool, typer.Option(help="Send statements the API refused again.")] = False,
               policy: PolicyOpt = None, db_url: DbUrl = None) -> None:
    """Post the statements not submitted yet; the state per statement is kept in the store (exit 1 if any stay pending)."""
    token = os.environ.get(token_env, "")
    try:
        with _store(db_url) as store:
            if infile is not None:
                statements = [Statement(puid=b["puid"], decision_id=b["puid"].rsplit("-", 1)[-1], seq=0, body=b)
                              for b in read_export(infile)]
            else:
                pol = load_policy(str(policy or Settings().policy))
                source = Statements(store.db, store.log, pol)
                statements = [s for s in source.iter(since=_date(since)) if isinstance(s, Statement)]
            submitter = Submitter(store.db, endpoint, token, max_attempts=max_attempts)
            try:
                result = submitter.submit(statements, retry_failed=retry_failed)
            finally:
                submitter.close()
    except RefereeError as exc:
        raise _fail(exc) from exc
    typer.echo(f"submitted {result.submitted}, already there (duplicate puid) {result.duplicate}, refused "
               f"{result.failed}, still pending {result.pending}, skipped (done before) {result.skipped}; "
               f"{result.requests} request(s)")
    if result.pending:
        raise typer.Exit(1)


@compliance_app.command("report")
def report(period: Annotated[str, typer.Option(help="2026-H1, 2026-Q3, 2026-05 or 2026.")],
           out: Annotated[Path, typer.Option("--out", help="Directory for the CSV files and report.html.")],
           policy: PolicyOpt = None, db_url: DbUrl = None) -> None:
    """The transparency report of a period: a CSV per table and an HTML page with charts."""
    try:
        pol = load_policy(str(policy or Settings().policy))
        with _store(db_url) as store:
            built = TransparencyReport(store.db, store.log, pol).build(period)
        files = write_report(built, out)
    except RefereeError as exc:
        raise _fail(exc) from exc
    typer.echo(f"wrote {len(files)} file(s) to {out} ({out / 'report.html'})")


# -- retention ---------------------------------------------------------------------
@retention_app.command("apply")
def retention_apply(config: Annotated[Path | None, typer.Option(help="YAML with a retention: section.")] = None,
                    dry_run: Annotated[bool, typer.Option(help="Count, change nothing.")] = False,
                    db_url: DbUrl = None) -> None:
    """Empty the content (and forget the author ids) past their retention; decisions and the chain stay."""
    try:
        rules = Retention.from_file(config) if config else Retention()
        with _store(db_url) as store:
            result = RetentionJob(store.db, store.content, rules).apply(dry_run=dry_run)
    except RefereeError as exc:
        raise _fail(exc) from exc
    verb = "would erase" if dry_run else "erased"
    typer.echo(f"{verb} {result.content_erased} content row(s) and {result.authors_removed} author id(s)")


@retention_app.command("erase-author")
def erase_author(author_id: Annotated[str, typer.Argument(help="The author whose content is erased.")],
                 db_url: DbUrl = None) -> None:
    """An erasure request: empty every item's content of this author and forget the id."""
    try:
        with _store(db_url) as store:
            result = RetentionJob(store.db, store.content).erase_author(author_id)
    except RefereeError as exc:
        raise _fail(exc) from exc
    typer.echo(f"erased the content of {result.items} item(s) ({result.content_erased} content row(s))")
