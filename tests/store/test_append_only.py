"""The database itself refuses UPDATE and DELETE on decisions and signals (and TRUNCATE on PostgreSQL)."""

from __future__ import annotations

import pytest
import sqlalchemy

from referee.engine import Engine
from referee.model import ContentItem
from tests.conftest import KeywordDetector

STATEMENTS = [
    "UPDATE decisions SET action = 'allow'",
    "DELETE FROM decisions",
    "DELETE FROM decisions WHERE supersedes IS NULL",
    "UPDATE signals SET score = 0",
    "DELETE FROM signals",
]


@pytest.mark.parametrize("sql", STATEMENTS)
def test_the_log_refuses_to_change(sql_store, small_policy, sql):
    with Engine(small_policy, [KeywordDetector()], sink=sql_store) as engine:
        first = engine.moderate(ContentItem(id="a", text="vile vile"))
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"):
        with sql_store.db.engine.begin() as conn:
            conn.execute(sqlalchemy.text(sql))
    assert sql_store.log.get(first.decision_id) == first
    with sql_store.db.engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("SELECT count(*) FROM signals")).scalar() == len(first.signals)


@pytest.mark.postgres
@pytest.mark.parametrize("table", ["decisions", "signals"])
def test_postgres_refuses_truncate(pg_url, small_policy, table):
    from referee.store import Store, upgrade

    upgrade(pg_url)
    store = Store(pg_url)
    with Engine(small_policy, [KeywordDetector()], sink=store) as engine:
        engine.moderate(ContentItem(id="a", text="vile"))
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"):
        with store.db.engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"TRUNCATE {table} CASCADE"))
    assert len(store.log.history("a")) == 1
    store.close()
