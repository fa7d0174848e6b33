"""The schema: the migrations create exactly the tables of ``sql/tables.py``, run through
``referee db upgrade``, and run by themselves only for the embedded SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from typer.testing import CliRunner

from referee.errors import StoreError
from referee.store import Store, upgrade
from referee.store.sql.database import HEAD, Database, script_head
from referee.store.sql.tables import metadata


def _differences(url: str) -> list:
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(ctx, metadata)
    engine.dispose()
    return diff


def test_the_code_knows_the_newest_migration():
    assert script_head() == HEAD


def test_migrations_and_tables_agree_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path}/m.db"
    assert upgrade(url) == (None, HEAD)
    assert _differences(url) == []


@pytest.mark.postgres
def test_migrations_and_tables_agree_on_postgres(pg_url):
    assert upgrade(pg_url) == (None, HEAD)
    assert _differences(pg_url) == []


def test_a_sqlite_file_is_upgraded_once_when_a_store_opens_it(tmp_path):
    url = f"sqlite:///{tmp_path}/auto.db"
    store = Store(url)
    assert store.db.revision() == HEAD
    store.close()
    seen: list[str] = []
    db = Database(url)
    sqlalchemy.event.listen(db.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    db.require_current()  # current: nothing but reading the revision
    assert not any(s.lstrip().upper().startswith(("CREATE", "ALTER", "DROP", "INSERT")) for s in seen), seen
    db.close()


@pytest.mark.postgres
def test_a_postgres_store_that_is_behind_says_what_to_run(pg_url):
    with pytest.raises(StoreError, match=r"run `referee db upgrade --db-url"):
        Store(pg_url)
    assert Database(pg_url).revision() is None  # the constructor migrated nothing
    upgrade(pg_url)
    Store(pg_url).close()


def test_a_database_of_a_newer_release_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/new.db"
    upgrade(url)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(StoreError, match="newer referee"):
        Store(url)
    with pytest.raises(StoreError, match="newer referee"):
        upgrade(url)


def test_a_failing_migration_leaves_the_sqlite_file_as_it_was(tmp_path):
    """SQLite runs the DDL in the migration's transaction too (``Database.migration``)."""
    from alembic import command

    from referee.store.sql.database import alembic_config

    url = f"sqlite:///{tmp_path}/half.db"
    db = Database(url)
    config = alembic_config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(sqlalchemy.text(  # a payload 0002 cannot read: it fails after renaming and creating tables
            "INSERT INTO decisions (decision_id, item_id, content_hash, action, strike, review_required, policy_id, "
            "policy_version, source, created_at, payload) VALUES ('d', 'i', 'h', 'allow', 0, 0, 'p', '1', "
            "'automated', '2026-01-01 00:00:00', 'not json')"))
    with pytest.raises(StoreError, match="nothing was changed"):
        db.upgrade()
    tables = set(sqlalchemy.inspect(db.engine).get_table_names())
    assert db.revision() == "0001" and "content" not in tables and "decisions_old" not in tables
    with db.engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("SELECT count(*) FROM decisions")).scalar() == 1
    db.close()


def test_referee_db_upgrade(tmp_path):
    from referee.cli import app

    url = f"sqlite:///{tmp_path}/cli.db"
    runner = CliRunner()
    first = runner.invoke(app, ["db", "upgrade", "--db-url", url])
    assert first.exit_code == 0, first.output
    assert f"upgraded store from revision none (empty) to {HEAD}" in first.output
    again = runner.invoke(app, ["db", "upgrade", "--db-url", url])
    assert again.exit_code == 0 and f"store is current (revision {HEAD})" in again.output
    shown = runner.invoke(app, ["db", "revision", "--db-url", url])
    assert shown.exit_code == 0 and "(current)" in shown.output
    bad = runner.invoke(app, ["db", "upgrade", "--db-url", "nosuchdialect://x"])
    assert bad.exit_code == 2 and "cannot open store" in bad.output


def test_migrations_run_via_alembic_cli(tmp_path):
    """The same migrations run from the alembic command line, for operators."""
    from importlib.resources import files

    ini = files("referee.store") / "alembic.ini"
    db = tmp_path / "cli.db"
    out = subprocess.run(
        ["alembic", "-c", str(ini), "-x", f"url=sqlite:///{db}", "upgrade", "head"],
        capture_output=True, text=True,
        env={**os.environ, "PATH": os.path.dirname(sys.executable) + ":" + os.environ["PATH"]},
    )
    assert out.returncode == 0, out.stderr
    tables = set(sqlalchemy.inspect(sqlalchemy.create_engine(f"sqlite:///{db}")).get_table_names())
    assert {"content", "items", "decisions", "signals", "decision_seq", "api_keys", "alembic_version"} <= tables
