"""Stores to test against: in memory, a SQLite file, and PostgreSQL on 127.0.0.1 (marker ``postgres``).

Each PostgreSQL store lives in a schema of its own, dropped afterwards; it is
upgraded with ``upgrade(url)`` first, as an operator runs ``referee db upgrade``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy

from referee.store import MemoryStore, Store, upgrade

PG_URL = os.environ.get("REFEREE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def postgres_available() -> bool:
    try:
        with sqlalchemy.create_engine(PG_URL, connect_args={"connect_timeout": 2}).connect():
            return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of an empty schema of its own on the test server."""
    if not postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} (start it: pg_ctlcluster 15 main start)")
    schema = f"t_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    yield PG_URL + f"?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def open_store(kind: str, tmp_path: object, request: pytest.FixtureRequest) -> Store | MemoryStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return Store(f"sqlite:///{tmp_path}/s.db")
    url = request.getfixturevalue("pg_url")
    upgrade(url)
    return Store(url)


SQL = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
ALL = ["memory", *SQL]


@pytest.fixture(params=ALL)
def store(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Store | MemoryStore]:
    """Every implementation: the in-memory one must behave as the SQL ones do."""
    s = open_store(request.param, tmp_path, request)
    yield s
    s.close()


@pytest.fixture(params=SQL)
def sql_store(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Store]:
    s = open_store(request.param, tmp_path, request)
    assert isinstance(s, Store)
    yield s
    s.close()
