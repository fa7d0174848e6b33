"""The SQLite file's checkpointer (store/sql/sqlite.py): off the write path, and the log
still rewinds under steady writes."""

from __future__ import annotations

import threading
import time

import sqlalchemy

from referee.engine import Engine
from referee.model import ContentItem
from referee.store import DecisionStore
from referee.store.sql import sqlite as sqlite_file
from tests.conftest import KeywordDetector


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "referee-sqlite-checkpoint"]


def _write(engine: Engine, batches: int, tag: str) -> None:
    for b in range(batches):
        engine.moderate_many([ContentItem(id=f"{tag}-{b}-{i}", text=f"vile item {i} {b}") for i in range(20)])


def test_only_a_writing_store_gets_a_checkpointer_and_close_stops_it(tmp_path, small_policy):
    before = len(_checkpoint_threads())
    reader = DecisionStore(f"sqlite:///{tmp_path}/r.db")
    reader.heads(["x"])
    assert len(_checkpoint_threads()) == before
    writer = DecisionStore(f"sqlite:///{tmp_path}/w.db")
    _write(Engine(small_policy, [KeywordDetector()], sink=writer), 1, "w")
    assert len(_checkpoint_threads()) == before + 1
    writer.close()
    reader.close()
    assert len(_checkpoint_threads()) == before


def test_checkpointer_copies_the_log_back_and_rewinds_it(tmp_path, small_policy, monkeypatch):
    monkeypatch.setattr(sqlite_file, "RESTART_FRAMES", 80)
    store = DecisionStore(f"sqlite:///{tmp_path}/c.db")
    assert store.db.sqlite is not None
    engine = Engine(small_policy, [KeywordDetector()], sink=store)
    seen: list[str] = []
    sqlalchemy.event.listen(store.db.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    _write(engine, 30, "a")
    time.sleep(sqlite_file.CHECKPOINT_INTERVAL_S * 4)  # the thread's pass after the last write
    assert any("RESTART" in sql for sql in seen)  # the long log was rewound with writers held back
    busy, frames, copied = store.db.sqlite.checkpoint()
    assert busy == 0 and copied == frames, (busy, frames, copied)  # all copied back
    _write(engine, 1, "z")  # the next writer starts the log from its beginning
    seen.clear()
    busy, frames, copied = store.db.sqlite.checkpoint()
    assert busy == 0 and 0 < frames < 80 and copied == frames, (busy, frames, copied)
    assert seen == ["PRAGMA wal_checkpoint(PASSIVE)"]  # a short log is copied beside the writers only
    # Everything written is in the database file, and still readable through the store.
    assert len(store.history("a-29-19")) == len(store.history("z-0-0")) == 1
    store.close()


def test_commits_leave_checkpoints_to_the_thread(tmp_path):
    """SQLite's own in-commit checkpoint is only the fallback, far above the thread's mark."""
    store = DecisionStore(f"sqlite:///{tmp_path}/g.db")
    with store.db.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()
    assert mode == "wal" and pages == sqlite_file.AUTOCHECKPOINT_PAGES > sqlite_file.RESTART_FRAMES
    store.close()


def test_a_long_reader_holds_writers_back_only_briefly(tmp_path, small_policy, monkeypatch):
    """An open read of the old log (an export streaming decisions) makes RESTART wait:
    it gives up after RESTART_WAIT_MS instead of holding every writer for the busy timeout."""
    monkeypatch.setattr(sqlite_file, "RESTART_FRAMES", 1)
    monkeypatch.setattr(sqlite_file, "CHECKPOINT_INTERVAL_S", 3600.0)  # passes run only when called here
    store = DecisionStore(f"sqlite:///{tmp_path}/l.db")
    engine = Engine(small_policy, [KeywordDetector()], sink=store)
    _write(engine, 3, "a")
    reader = store.db.engine.connect()
    reader.exec_driver_sql("BEGIN")
    reader.exec_driver_sql("SELECT count(*) FROM decisions").all()  # a snapshot of the current log
    _write(engine, 1, "b")  # the log moves past the reader's snapshot
    start = time.monotonic()
    busy, _, _ = store.db.sqlite.checkpoint()
    waited = time.monotonic() - start
    assert busy == 1 and waited < 2.0, (busy, waited)  # well under the 5 s busy timeout
    _write(engine, 1, "c")  # writers go on
    reader.exec_driver_sql("ROLLBACK")
    reader.close()
    assert store.db.sqlite.checkpoint()[0] == 0
    store.close()


def test_an_in_memory_database_is_one_database_for_every_thread(small_policy):
    """``sqlite://`` opened (it raised TypeError on ``pool_timeout``), and a decision stored
    from the engine's thread is read from another: SQLAlchemy's default pool for an in-memory
    SQLite gives each thread a database of its own."""
    for url in ("sqlite://", "sqlite:///:memory:"):
        store = DecisionStore(url)
        engine = Engine(small_policy, [KeywordDetector()], sink=store)
        done: list[str] = []
        worker = threading.Thread(target=lambda: done.extend(
            d.decision_id for d in engine.moderate_many([ContentItem(id="m1", text="vile words")])))
        worker.start()
        worker.join()
        assert store.heads(["m1"])["m1"].decision_id == done[0]
        store.close()
