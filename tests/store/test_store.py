from __future__ import annotations

import os
import subprocess
import uuid

import pytest
import sqlalchemy

from referee.errors import AuthError
from referee.model import Action, ContentItem
from referee.engine import Engine
from referee.store import DecisionStore
from tests.conftest import KeywordDetector

PG_URL = os.environ.get("REFEREE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _postgres_available() -> bool:
    try:
        with sqlalchemy.create_engine(PG_URL, connect_args={"connect_timeout": 2}).connect():
            return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        yield DecisionStore(f"sqlite:///{tmp_path}/s.db")
        return
    if not _postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} (start it: pg_ctlcluster 15 main start)")
    schema = f"t_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    s = DecisionStore(PG_URL + f"?options=-csearch_path%3D{schema}")
    yield s
    s.close()
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))


def test_decisions_are_append_only(store, small_policy):
    engine = Engine(small_policy, [KeywordDetector()], sink=store)
    first = engine.moderate(ContentItem(id="a", text="vile vile"))
    assert first.action is Action.hold_for_review
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"):
        with store._db.begin() as conn:
            conn.execute(sqlalchemy.text("UPDATE decisions SET action = 'allow'"))
    review = first.model_copy(update={"decision_id": "rev-1", "action": Action.allow, "source": "review",
                                      "automated_decision": False, "reasons": ()})
    stored = store.supersede(first.decision_id, review)
    assert stored.supersedes == first.decision_id
    history = store.history("a")
    assert [d.decision_id for d in history] == [first.decision_id, "rev-1"]
    assert store.get_decision(first.decision_id).action is Action.hold_for_review  # untouched


def test_item_roundtrip_keeps_context(store, small_policy):
    item = ContentItem(id="x", text="buy", surface="message", country="DE", context={"thread": "t1"})
    d = Engine(small_policy, [KeywordDetector()], sink=store).moderate(item)
    back = store.get_item("x", d.content_hash)
    assert back.text == "buy" and back.country == "DE" and back.context == {"thread": "t1"}


def test_api_keys_are_hashed_and_scoped(store):
    key = store.create_key("ci", ["read"])
    key_id, scopes = store.check_key(key)
    assert scopes == {"read"}
    with store._db.connect() as conn:
        stored = conn.execute(sqlalchemy.text("SELECT secret_hash FROM api_keys")).scalar_one()
    assert key.split("_", 2)[2] not in stored
    with pytest.raises(AuthError, match="invalid"):
        store.check_key(key[:-2] + "xx")
    store.revoke_key(key_id)
    with pytest.raises(AuthError):
        store.check_key(key)
    with pytest.raises(AuthError, match="scopes must be"):
        store.create_key("bad", ["superuser"])


def test_migrations_run_via_alembic_cli(tmp_path):
    """The same migrations run from the alembic command line, for operators."""
    from importlib.resources import files

    ini = files("referee.store") / "alembic.ini"
    db = tmp_path / "cli.db"
    out = subprocess.run(
        ["alembic", "-c", str(ini), "-x", f"url=sqlite:///{db}", "upgrade", "head"],
        capture_output=True, text=True, env={**os.environ, "PATH": os.path.dirname(__import__("sys").executable) + ":" + os.environ["PATH"]},
    )
    assert out.returncode == 0, out.stderr
    tables = set(sqlalchemy.inspect(sqlalchemy.create_engine(f"sqlite:///{db}")).get_table_names())
    assert {"items", "decisions", "signals", "api_keys", "alembic_version"} <= tables


def test_saving_a_stored_decision_again_returns_the_stored_one(store, small_policy):
    """What a second writer racing the first sees: no duplicate, no error."""
    from referee.engine import decide

    item = ContentItem(id="r", text="buy")
    first = decide(small_policy, item, [], (), {"keyword": "k1"})
    later = first.model_copy(update={"created_at": first.created_at.replace(year=2030)})
    assert store.save_decisions([(item, first)]) == [first]
    assert store.save_decisions([(item, later)]) == [first]
    other = ContentItem(id="s", text="vile")
    second = decide(small_policy, other, [], (), {"keyword": "k1"})
    saved = store.save_decisions([(item, later), (other, second)])
    assert saved == [first, second]
    assert len(store.history("r")) == 1 and len(store.history("s")) == 1


def test_concurrent_sqlite_writers_across_stores_all_land(tmp_path, small_policy):
    # Two stores on one file stand in for two server worker processes, each with two
    # threads writing batches at once: every batch lands, and the writer lock file exists.
    import threading

    url = f"sqlite:///{tmp_path}/shared.db"
    stores = [DecisionStore(url), DecisionStore(url)]
    engines = [Engine(small_policy, [KeywordDetector()], sink=s) for s in stores]
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        engine = engines[n % 2]
        for b in range(15):
            batch = [ContentItem(id=f"w{n}-{b}-{i}", text=f"item {i} of batch {b}") for i in range(20)]
            try:
                engine.moderate_many(batch)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with sqlalchemy.create_engine(url).connect() as conn:
        assert conn.execute(sqlalchemy.text("SELECT count(*) FROM decisions")).scalar() == 4 * 15 * 20
    assert (tmp_path / "shared.db.write-lock").exists()
    for e in engines:
        e.close()
    for s in stores:
        s.close()


def test_batch_insert_writes_every_column_as_core_would(store, small_policy):
    """The hot-path insert (store/bulk.py) bypasses Core's per-row processing: what it
    writes must read back exactly, datetimes, JSON and signal rows included."""
    from datetime import datetime, timedelta, timezone

    created = datetime(2026, 5, 4, 5, 2, 1, 123456, tzinfo=timezone(timedelta(hours=2)))
    item = ContentItem(id="b1", text="vile buy", surface="message", country="FR", author_id="u9",
                       language="fr", created_at=created, context={"thread": ["t1", 2]})
    plain = ContentItem(id="b2", text="fine")
    decided = Engine(small_policy, [KeywordDetector()], sink=store).moderate_many([item, plain])
    back = store.get_decisions([d.decision_id for d in decided])
    assert [back[d.decision_id] for d in decided] == decided
    stored_item = store.get_item("b1", decided[0].content_hash)
    assert stored_item == item and stored_item.created_at.isoformat() == "2026-05-04T03:02:01.123456+00:00"
    with store._db.connect() as conn:
        rows = conn.execute(sqlalchemy.text(
            "SELECT decision_id, detector, category, score FROM signals ORDER BY category")).all()
        action, strike = conn.execute(sqlalchemy.text(
            "SELECT action, strike FROM decisions WHERE item_id = 'b1'")).one()
    assert sorted((r.decision_id, r.detector, r.category, r.score) for r in rows) == sorted(
        (d.decision_id, s.detector, s.category, s.score) for d in decided for s in d.signals)
    assert action == decided[0].action.value and bool(strike) == decided[0].strike
