"""One database as the SQL roles share it: the engine, writes, and the schema's revision.

SQLite is the embedded default (one file, zero setup); PostgreSQL is a URL
change (``postgresql+psycopg://user@127.0.0.1/referee``). The schema is owned
by the Alembic migrations. ``referee db upgrade`` applies them; an embedded
SQLite file that is behind is upgraded once, when a store opens it. A
PostgreSQL database that is behind is refused with that command named: a
server's schema changes when its operator says so, not when some process
happens to start.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import pydantic_core
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, inspect, make_url, select, text
from sqlalchemy import Engine as SAEngine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.dml import Insert

from referee.errors import StoreError
from referee.store.sql.bulk import RawJSON
from referee.store.sql.sqlite import SQLiteFile

#: The newest migration; a test checks it against the migration scripts.
HEAD = "0008"
#: Every revision this release can upgrade from (None: an empty database).
KNOWN = (None, "0001", "0002", "0003", "0004", "0005", "0006", "0007", HEAD)


def alembic_config() -> Config:
    config = Config(str(files("referee.store") / "alembic.ini"))
    config.set_main_option("script_location", str(files("referee.store") / "migrations"))
    return config


def script_head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _sqlite_in_memory(url: str) -> bool:
    try:
        parsed = make_url(url)
    except SQLAlchemyError:
        return False  # create_engine names the problem
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


class Database:
    """An SQLAlchemy engine on one URL, with the embedded SQLite file's write lock and checkpointer."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            # A database that does not answer must fail the call, not hang it.
            pool: dict[str, Any] = {"pool_timeout": 10}
            connect_args: dict[str, Any] = {"connect_timeout": 5} if url.startswith("postgresql") else {}
            if _sqlite_in_memory(url):
                # One database for every thread of the process (the engine's thread and the event
                # loop's), on one connection; SQLAlchemy's default there gives each thread its own.
                pool = {"poolclass": StaticPool}
                connect_args = {"check_same_thread": False}
            # JSON columns are written by pydantic-core (Rust) rather than the json module:
            # serialising decision payloads was ~5 % of a busy server's CPU.
            # pre-ping notices a server that dropped the connection; a SQLite file cannot.
            self.engine: SAEngine = create_engine(
                url, future=True, pool_pre_ping=not url.startswith("sqlite"), **pool,
                connect_args=connect_args, json_serializer=_to_json,
            )
        except (SQLAlchemyError, ImportError, TypeError) as exc:
            raise StoreError(f"cannot open store {url!r}: {exc}") from exc
        self.dialect = self.engine.dialect
        self.sqlite = SQLiteFile(self.engine) if self.dialect.name == "sqlite" else None

    # -- transactions ----------------------------------------------------------
    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction. On SQLite, writers first queue on a lock (see ``sql.sqlite``)."""
        with self.sqlite.writing() if self.sqlite else contextlib.nullcontext():
            with self.engine.begin() as conn:
                yield conn

    def read(self) -> Connection:
        return self.engine.connect()

    def insert_ignoring_duplicates(self, table: Any) -> Insert:
        if self.dialect.name == "postgresql":
            return pg_insert(table).on_conflict_do_nothing()
        return sqlite_insert(table).on_conflict_do_nothing()

    def ping(self) -> None:
        """Raise StoreError unless the database answers (readiness checks)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except SQLAlchemyError as exc:
            raise StoreError(f"store {self.url!r} is not reachable: {exc}") from exc

    def close(self) -> None:
        if self.sqlite is not None:
            self.sqlite.close()
        self.engine.dispose()

    # -- the schema ------------------------------------------------------------
    def revision(self) -> str | None:
        """The schema's Alembic revision; None for an empty database."""
        try:
            with self.engine.connect() as conn:
                if not inspect(conn).has_table("alembic_version"):
                    return None
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the schema revision of {self.url!r}: {exc}") from exc

    def require_current(self) -> None:
        """Open only a database at this release's schema. The embedded SQLite file is
        upgraded here, once; anything else behind is refused with the command to run."""
        current = self.revision()
        if current == HEAD:
            return
        if current not in KNOWN:
            raise StoreError(
                f"store {self.url!r} is at schema revision {current!r}, which this release of referee "
                f"does not know (it knows up to {HEAD!r}); it was written by a newer referee: upgrade referee"
            )
        if self.sqlite is not None:
            self.upgrade()
            return
        raise StoreError(
            f"store {self.url!r} is at schema revision {current or 'none (empty)'}, behind this release's "
            f"{HEAD!r}: run `referee db upgrade --db-url '{self.url}'` (back the database up first)"
        )

    def upgrade(self) -> tuple[str | None, str]:
        """Apply every migration not applied yet, in one transaction. Returns (from, to)."""
        config = alembic_config()
        try:
            with self.sqlite.locked() if self.sqlite else contextlib.nullcontext():
                # (On SQLite, two processes opening one old file: one upgrades it, the other finds it done.)
                before = self.revision()
                if before != HEAD:
                    with self.migration() as conn:
                        config.attributes["connection"] = conn
                        command.upgrade(config, "head")
        except Exception as exc:  # noqa: BLE001 - a migration's failure, whatever it is, is the store's
            raise StoreError(f"cannot upgrade store {self.url!r} (nothing was changed): {exc}") from exc
        return before, HEAD

    @contextlib.contextmanager
    def migration(self) -> Iterator[Connection]:
        """A connection in ONE transaction for migrations, committed at the end.

        On SQLite: Python's sqlite3 opens a transaction only before INSERT, UPDATE and
        DELETE, so DDL would run in autocommit and a failing migration would leave half
        a schema; with ``isolation_level = None`` and an explicit BEGIN, SQLite's own
        transactional DDL applies."""
        if self.sqlite is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            raw: Any = conn.connection.dbapi_connection
            saved = raw.isolation_level
            raw.isolation_level = None
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    raw.rollback()
                    raise
                raw.commit()
            finally:
                conn.rollback()  # SQLAlchemy's own (empty) transaction
                raw.isolation_level = saved


def upgrade(url: str) -> tuple[str | None, str]:
    """Bring the store at ``url`` to this release's schema (``referee db upgrade``)."""
    db = Database(url)
    try:
        current = db.revision()
        if current not in KNOWN:
            db.require_current()  # raises: a newer referee wrote it
        return db.upgrade()
    finally:
        db.close()


def _to_json(value: Any) -> str:
    if isinstance(value, RawJSON):
        return value
    return pydantic_core.to_json(value).decode()
