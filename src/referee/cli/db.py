"""``referee db``: the store's schema. ``upgrade`` applies the migrations; ``revision`` says where a database is.

A PostgreSQL store is upgraded only here (back it up first); the embedded
SQLite file is also upgraded once, automatically, when a store opens it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from referee.errors import RefereeError
from referee.settings import Settings
from referee.store.sql.database import HEAD, KNOWN, Database
from referee.store.sql.database import upgrade as upgrade_store

db_app = typer.Typer(name="db", help="The decision store's schema: upgrade it, show its revision.",
                     no_args_is_help=True)

DbUrl = Annotated[str | None, typer.Option("--db-url", help="SQLAlchemy URL of the store [env REFEREE_DB_URL].")]


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def upgrade(db_url: DbUrl = None) -> None:
    """Apply every migration the store lacks, in one transaction (a no-op when it is current)."""
    url = db_url or Settings().db_url
    try:
        before, after = upgrade_store(url)
    except RefereeError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    if before == after:
        typer.echo(f"store is current (revision {after})")
    else:
        typer.echo(f"upgraded store from revision {before or 'none (empty)'} to {after}")


@db_app.command("revision")
def revision(db_url: DbUrl = None) -> None:
    """Print the store's schema revision and this release's."""
    url = db_url or Settings().db_url
    try:
        db = Database(url)
        try:
            current = db.revision()
        finally:
            db.close()
    except RefereeError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    known = current in KNOWN
    state = "current" if current == HEAD else "behind: run `referee db upgrade`" if known else "written by a newer referee"
    typer.echo(f"store revision {current or 'none (empty)'}; this release {HEAD} ({state})")
