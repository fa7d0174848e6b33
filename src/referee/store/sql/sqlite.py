"""What the embedded SQLite store needs beyond SQLAlchemy: one writer at a
time without sleeping, and WAL checkpoints off the write path.

Both were found as latency tails of a busy server (50 clients, two worker
processes on one file), not guessed:

- **Writers queue on a lock.** SQLite allows one writer. A second writer that
  finds the database locked is put to sleep by the busy handler in growing
  steps (1, 2, 5, 10 ... up to 100 ms) and retries, so two engine batches
  committing at once turned a 2 ms commit into a 100 ms tail. Waiting on a
  lock wakes the next writer the moment the first commits: a thread lock
  inside the process, and ``flock`` on a sidecar file across processes.
- **Checkpoints run on their own thread.** In WAL mode SQLite copies the log
  back into the database ("checkpoints") inside whichever commit pushes the
  log past ``wal_autocheckpoint`` pages (1,000 by default), and that
  checkpoint fsyncs. On this machine's disk one commit in fourteen
  (25-decision batches) took 28 ms instead of 2, with the write lock held,
  so every writer of every worker waited: 46 % of all write time was spent
  in such stalled commits (on tmpfs: none). Here a background thread copies
  the log back in PASSIVE mode, beside the writers, shortly after each
  write. A passive pass never catches up while writers keep appending, and
  the log only rewinds once fully copied, so when it reaches
  ``RESTART_FRAMES`` pages (80 MiB) the thread holds writers back for one
  RESTART pass, which is short because nearly everything is copied already.
  Measured on 3,000 batches: total write time 7.2 s instead of 15.5 s, 11 %
  of it in batches over 10 ms (p99 commit 4.9 ms instead of 31.8 ms). SQLite's
  own auto-checkpoint stays on, at twice that mark, as the fallback should
  the thread ever stop.

Durability is unchanged: ``synchronous=NORMAL`` in WAL mode, so a committed
decision survives a crash of the process; a power cut can lose the last
commits (``synchronous=FULL`` would fsync each one).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

#: Seconds the checkpointer waits after a write before its next pass.
CHECKPOINT_INTERVAL_S = 0.05
#: Log frames (pages) after which the checkpointer rewinds the log to its start.
RESTART_FRAMES = 20_000
#: Longest the RESTART pass holds writers back waiting for readers of the old log.
RESTART_WAIT_MS = 100
#: How long any connection waits for a lock before SQLite says "database is locked".
BUSY_TIMEOUT_MS = 5000
#: Pages (4 KiB) after which a commit checkpoints by itself: the fallback only.
AUTOCHECKPOINT_PAGES = 40_000
#: Bytes of the database file each connection reads through a memory map instead of
#: read() calls. Each serving process re-reads the pages another one changed; mapped, that
#: is a memory copy, not a system call: bench_http (2 workers) 9-10 % less server CPU a
#: request in two paired runs. Pages are still written through the WAL as before.
MMAP_BYTES = 256 * 1024 * 1024


class SQLiteFile:
    """One SQLite database file as the store uses it: pragmas on every
    connection, ``writing()`` around each write transaction, a checkpointer."""

    def __init__(self, db: Engine, checkpoint_interval_s: float | None = None) -> None:
        self._db = db
        database = db.url.database
        self.in_memory = not database or database == ":memory:" or database.startswith("file::memory:")
        self._lock_path = None if self.in_memory else f"{database}.write-lock"
        self._thread_lock = threading.Lock()
        self._interval = CHECKPOINT_INTERVAL_S if checkpoint_interval_s is None else checkpoint_interval_s
        self._stop = threading.Event()
        self._wrote = threading.Event()
        self._checkpointer: threading.Thread | None = None
        event.listen(db, "connect", _pragmas)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the write lock for one transaction; the checkpointer follows it up."""
        if self._checkpointer is None and not self.in_memory:
            self._start_checkpointer()
        with self._write_lock():
            yield
        self._wrote.set()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the write lock without a write to follow up (migrations)."""
        with self._write_lock():
            yield

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        with self._thread_lock:
            if self._lock_path is None:
                yield
                return
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the flock

    def checkpoint(self) -> tuple[int, int, int]:
        """Copy the log back into the database beside the writers (PASSIVE); once the
        log is long, finish and rewind it with writers held back (RESTART), which is
        short because the passive pass already copied nearly everything. Returns
        SQLite's (busy, log frames, frames copied) of the last pass."""
        with self._db.connect() as conn:
            result = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
            if result[1] >= RESTART_FRAMES:
                # Writers always appending means a passive pass never catches up, and the
                # log only rewinds once fully copied: without this it grows without bound.
                # RESTART also waits for readers of the old log (a long export, say); with
                # writers held back, give up after RESTART_WAIT_MS and try again next pass.
                conn.exec_driver_sql(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
                try:
                    with self._write_lock():
                        result = conn.exec_driver_sql("PRAGMA wal_checkpoint(RESTART)").one()
                finally:
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        busy, frames, copied = (int(v) for v in result)
        return busy, frames, copied

    def close(self) -> None:
        self._stop.set()
        self._wrote.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=5)

    def _start_checkpointer(self) -> None:
        with self._thread_lock:
            if self._checkpointer is None:  # only stores that write get a thread
                self._checkpointer = threading.Thread(
                    target=self._checkpoint_loop, name="referee-sqlite-checkpoint", daemon=True)
                self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        while True:
            self._wrote.wait()
            if self._stop.wait(self._interval):
                return
            self._wrote.clear()
            try:
                self.checkpoint()
            except SQLAlchemyError as exc:
                # The fallback (AUTOCHECKPOINT_PAGES) still bounds the log; say so once and stop.
                log.warning("background WAL checkpoint failed, leaving it to SQLite: %s", exc)
                return


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
    cursor.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    cursor.close()
