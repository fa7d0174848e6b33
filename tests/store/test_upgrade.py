"""A database written by the last release (0c50325, before the store was split by role)
upgrades without loss: see fixtures/make_release_db.py for what it holds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy

from referee.engine import Engine
from referee.errors import AuthError
from referee.model import ContentItem, Decision
from referee.policy import Policy
from referee.store import Store
from referee.store.sql.database import HEAD as HEAD_REVISION
from tests.conftest import SMALL_POLICY, KeywordDetector

FIXTURES = Path(__file__).parent / "fixtures"
EXPECT = json.loads((FIXTURES / "release-0c50325.json").read_text())


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    path = tmp_path / "release.db"
    shutil.copy(FIXTURES / "release-0c50325.db", path)
    return path


def _raw(path: Path, sql: str) -> list:
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text(sql)).all()
    engine.dispose()
    return rows


def test_the_fixture_is_what_the_old_release_wrote(old_db):
    assert _raw(old_db, "SELECT version_num FROM alembic_version") == [("0001",)]
    assert len(_raw(old_db, "SELECT * FROM decisions")) == len(EXPECT["decisions"]) == 8
    payloads = [json.loads(p) for (p,) in _raw(old_db, "SELECT payload FROM decisions")]
    assert any(e.get("text") for p in payloads for s in p["signals"] for e in s["evidence"])  # old evidence copied the text


def test_opening_the_embedded_file_upgrades_it_once_and_keeps_every_decision(old_db):
    store = Store(f"sqlite:///{old_db}")
    assert store.db.revision() == HEAD_REVISION
    records = list(store.log.records())
    # Every decision is there, readable as today's Decision, in gap-free seq order.
    assert [r.seq for r in records] == list(range(1, 9))
    assert {r.decision.decision_id for r in records} == {d["decision_id"] for d in EXPECT["decisions"]}
    for r, expected in zip(sorted(records, key=lambda r: r.decision.decision_id),
                           sorted(EXPECT["decisions"], key=lambda d: d["decision_id"])):
        d = r.decision
        assert isinstance(d, Decision)
        assert (d.item_id, d.action.value, d.source, len(d.failures)) == (
            expected["item_id"], expected["action"], expected["source"], expected["failures"])
        assert d.policy_sha256 == "unknown"
        assert d.provisional == bool(d.failures)
        assert d.input_key == d.decision_id  # the old id hashed the inputs (all but the policy's content)
        assert Decision.model_validate_json(d.json_bytes) == d
    # Evidence names the part and keeps offsets, not a second copy of the words.
    spans = [e for r in records for s in r.decision.signals for e in s.evidence]
    assert spans and all(e.part_id == "text" and e.start is not None and e.entry for e in spans)
    stored = [json.loads(p) for (p,) in _raw(old_db, "SELECT payload FROM decisions")]
    assert not any("text" in e for p in stored for s in p["signals"] for e in s["evidence"])
    assert not any("you idiot" in json.dumps(p) for p in stored)
    # The chain: the review record is c3's head; c5's second root now supersedes its first.
    heads = store.log.heads(list(EXPECT["heads"]))
    assert {item: d.decision_id for item, d in heads.items()} == EXPECT["heads"]
    c3 = store.log.history("c3")
    assert [r.decision.source for r in c3] == ["automated", "review"]
    assert c3[1].decision.supersedes == c3[0].decision.decision_id and c3[0].seq < c3[1].seq
    c5 = store.log.history("c5")
    assert len(c5) == 2 and c5[1].decision.supersedes == c5[0].decision.decision_id
    assert all(r.decision.supersedes is None for item in ("c1", "c2", "c4", "c6")
               for r in store.log.history(item))
    # The API key still authenticates; the revoked one still does not.
    assert store.check_key(EXPECT["key"])[1] == {"read", "moderate"}
    with pytest.raises(AuthError):
        store.check_key(EXPECT["revoked_key"])
    # Content moved out of the decisions' way, metadata and media included.
    c1 = heads["c1"]
    item = store.get_item("c1", c1.content_hash)
    assert item is not None and item.text == "you idiot, honestly"
    assert (item.country, item.author_id, item.language, item.context) == ("DE", "u1", "en", {"thread": "t1"})
    assert item.created_at is not None and item.created_at.isoformat() == "2026-11-20T12:00:00+00:00"
    c4 = store.get_item("c4", heads["c4"].content_hash)
    assert c4 is not None and [p.kind for p in c4.parts] == ["text", "image"]
    assert c4.parts[1].url == "https://img.example/cover.png"  # type: ignore[union-attr]
    store.close()
    # Opening it again finds it current: nothing runs twice.
    again = Store(f"sqlite:///{old_db}")
    assert [r.seq for r in again.log.records()] == list(range(1, 9))
    again.close()


def test_text_items_get_todays_content_hash_so_a_reviewers_verdict_stands(old_db):
    store = Store(f"sqlite:///{old_db}")
    c3 = store.log.head("c3")
    assert c3 is not None and c3.source == "review"
    item = ContentItem(id="c3", text="what a jerk move", surface="message")
    assert c3.content_hash == item.content_hash
    policy = Policy.from_yaml(SMALL_POLICY, source="small.yaml")
    with Engine(policy, [KeywordDetector()], sink=store) as engine:
        assert engine.moderate(item) == c3  # the human verdict is not lost to the upgrade
    store.close()


def test_after_the_upgrade_the_log_refuses_update_and_delete(old_db):
    Store(f"sqlite:///{old_db}").close()
    engine = sqlalchemy.create_engine(f"sqlite:///{old_db}")
    for sql in ("UPDATE decisions SET action = 'allow'", "DELETE FROM decisions",
                "UPDATE signals SET score = 0", "DELETE FROM signals"):
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(sqlalchemy.text(sql))
    engine.dispose()
    assert len(_raw(old_db, "SELECT * FROM decisions")) == 8


@pytest.mark.postgres
def test_a_postgres_database_of_the_old_release_upgrades_too(old_db, pg_url):
    """Copy the fixture's rows into a PostgreSQL schema at revision 0001, then upgrade."""
    from alembic import command

    from referee.store.sql.database import Database, alembic_config, upgrade

    db = Database(pg_url)
    config = alembic_config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    old = sqlalchemy.create_engine(f"sqlite:///{old_db}")
    meta = sqlalchemy.MetaData()
    with old.connect() as src, db.engine.begin() as dst:
        for name in ("items", "decisions", "api_keys", "signals"):
            table = sqlalchemy.Table(name, meta, autoload_with=dst)
            rows = [dict(r._mapping) for r in src.execute(sqlalchemy.text(f"SELECT * FROM {name}"))]
            for row in rows:
                for key in ("meta", "payload"):
                    if key in row:
                        row[key] = json.loads(row[key])
            order = sorted(rows, key=lambda r: r.get("supersedes") is not None)  # parents first
            dst.execute(sqlalchemy.insert(table), order)
    old.dispose()
    with pytest.raises(Exception, match="referee db upgrade"):
        Store(pg_url)
    db.close()
    assert upgrade(pg_url) == ("0001", HEAD_REVISION)
    store = Store(pg_url)
    records = list(store.log.records())
    assert [r.seq for r in records] == list(range(1, 9))
    heads = store.log.heads(list(EXPECT["heads"]))
    assert {item: d.decision_id for item, d in heads.items()} == EXPECT["heads"]
    assert store.check_key(EXPECT["key"])[1] == {"read", "moderate"}
    store.close()
