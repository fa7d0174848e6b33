"""Following the decision log beside the traffic: review queues, notices, account
actions and the audit chain.

Held decisions enter the review queues, notices about items referee now knows
are routed and decided notices settled, strikes become account actions, and
new records are linked into the tamper-evident chain, a couple of seconds
after they are stored, without adding to any request. A follower reads the log
from where the last pass stopped (``ReviewDesk.sync``, ``AuditChain.seal``;
both are incremental and resume from what the store last recorded). A pass
that fails is logged and retried at the next tick; nothing is lost.

**One follower per database.** Every pass first checks a lease (``FollowLease``):
only its holder follows, every other follower skips the tick and asks again at
the next one, so when the holder stops or dies another takes over within a
tick. On SQLite the lease is a non-blocking ``flock`` on ``<db>.follow-lock``
beside the database file; on PostgreSQL a session advisory lock
(``pg_try_advisory_lock``) held on a connection of its own; an in-memory
database belongs to one process, whose follower always holds it. Several
followers in the serving processes, each taking the store's write lock every
tick, were measured costing the requests of a busy server their p99 (540 ms
against 25 ms, docs/spine.md).

**Where it runs.** ``referee serve`` runs one follower as a process of its own
(``referee follow``) beside the uvicorn workers and tells the workers not to
follow (``REFEREE_FOLLOW_IN_APP=false``); a worker then only reads the drift
gauges that follower computed (``DriftBoard``) for its own ``/metrics``.
``create_app`` used directly (tests, embedding, ``uvicorn --factory``) follows
in a thread of the app, lease-guarded like the process.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from referee.obs import Metrics
from referee.online.drift import DriftBoard, drift_gauges, drift_report
from referee.policy import Policy
from referee.records import notices
from referee.records.accounts import AccountBook
from referee.records.chain import AuditChain
from referee.records.review import ReviewDesk
from referee.store import Store

log = logging.getLogger(__name__)

#: The first key of the PostgreSQL advisory lock ("RFOL"); the second is a hash of the store's schema.
PG_LEASE_CLASS = 0x52464F4C
_PG_TRY = text("SELECT pg_try_advisory_lock(:cls, hashtext(coalesce(current_schema(), '')))")


class FollowLease:
    """Whether this follower is the one that follows its store's database.

    ``held()`` takes the lease when it is free and says whether this follower holds
    it; it never waits. ``release()`` gives it back (and a process that dies gives it
    back too: the kernel drops its ``flock``, PostgreSQL ends its session)."""

    def __init__(self, store: Store) -> None:
        db = store.db
        self.kind: str
        self._fd: int | None = None
        self._pg: Any = None
        self._pg_engine: Any = None
        self._path: str | None = None
        if db.sqlite is not None and not db.sqlite.in_memory:
            self.kind = "sqlite"
            self._path = f"{db.engine.url.database}.follow-lock"
        elif db.dialect.name == "postgresql":
            self.kind = "postgresql"
            self._pg_engine = create_engine(db.engine.url, poolclass=NullPool,
                                            connect_args={"connect_timeout": 5})
        else:  # an in-memory database: no other process can see it
            self.kind = "local"

    def held(self) -> bool:
        if self.kind == "sqlite":
            return self._flock()
        if self.kind == "postgresql":
            return self._advisory()
        return True

    def _flock(self) -> bool:
        if self._fd is not None:
            return True
        assert self._path is not None
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def _advisory(self) -> bool:
        if self._pg is not None:
            try:  # the lock lives as long as the session: is it still there?
                self._pg.exec_driver_sql("SELECT 1")
                return True
            except SQLAlchemyError:
                log.warning("the connection holding the follow lease is gone; trying to take it again")
                self._close_pg()
        conn = self._pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(conn.execute(_PG_TRY, {"cls": PG_LEASE_CLASS}).scalar())
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._pg = conn
        return True

    def _close_pg(self) -> None:
        conn, self._pg = self._pg, None
        try:
            conn.close()  # a session lock ends with its session (NullPool: the connection closes)
        except SQLAlchemyError:
            pass

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor releases the flock
        if self._pg is not None:
            self._close_pg()

    def close(self) -> None:
        self.release()
        if self._pg_engine is not None:
            self._pg_engine.dispose()


#: Seconds between a serving process's reads of the latest drift gauges (one row).
DRIFT_READ_S = 30.0


class LogFollower:
    """``follow_log``: run the passes over the log (under the lease); False keeps only
    the drift gauges of ``metrics`` (a serving process whose log a ``referee follow``
    process follows)."""

    def __init__(self, store: Store, policy: Policy, interval_s: float, audit_key_env: str | None = None,
                 metrics: Metrics | None = None, drift_every_s: float = 0.0, follow_log: bool = True) -> None:
        self.store = store
        self.policy = policy
        self.interval_s = interval_s
        # Drift reads whole windows of the log: every few minutes, by the lease's holder only.
        self.metrics = metrics
        self.drift_every_s = drift_every_s
        self.follow_log = follow_log
        self._next_drift = 0.0
        self._next_drift_read = 0.0
        self._board = DriftBoard(store.db)
        key = os.environ.get(audit_key_env, "") if audit_key_env else ""
        self._chain = AuditChain(store.db, key=key.encode() or None)
        self._desk = ReviewDesk(store, policy)
        self._accounts = AccountBook(store, policy)
        self._lease = FollowLease(store) if follow_log else None
        self._holder = False
        #: Passes over the log this follower ran (as the lease's holder).
        self.passes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def idle(self) -> bool:
        """Nothing to do: no log to follow and no drift gauges to keep."""
        return not self.follow_log and (self.metrics is None or self.drift_every_s <= 0)

    def once(self) -> bool:
        """One pass, if this follower holds the lease: queue what needs review, route and
        settle notices, turn strikes into account actions, then seal what is new. Drift
        (this process's gauges) whether or not. Returns whether the log was followed."""
        followed = False
        if self.follow_log and self._take_lease():
            for step, run in (
                ("review sync", self._desk.sync),
                ("notice routing", lambda: notices.route_pending(self._desk)),
                ("notice outcomes", lambda: notices.settle(self._desk)),
                ("account actions", self._accounts.sync),
                ("audit seal", self._chain.seal),
            ):
                self._run(step, run)
            self.passes += 1
            followed = True
        self._run("drift", lambda: self._drift(followed))
        return followed

    def _take_lease(self) -> bool:
        assert self._lease is not None
        try:
            held = self._lease.held()
        except Exception:  # noqa: BLE001 - the database is away: skip the tick, ask again at the next
            log.exception("cannot check the follow lease; retrying in %.1f s", self.interval_s)
            held = False
        if held != self._holder:
            self._holder = held
            if held:
                log.info("process %d follows the decision log (lease: %s)", os.getpid(), self._lease.kind)
            else:
                log.info("process %d no longer follows the decision log", os.getpid())
        return held

    def _run(self, step: str, run: Any) -> None:
        try:
            run()
        except Exception:  # noqa: BLE001 - the next tick retries from where the store stopped
            log.exception("%s failed; retrying in %.1f s", step, self.interval_s)

    def _drift(self, followed: bool) -> None:
        """Yesterday against the week before it (docs/online-quality.md): computed by the
        follower that holds the lease, every ``drift_every_s``, and kept in the database
        (``DriftBoard``); a process with gauges to show reads the latest from there."""
        if self.drift_every_s <= 0:
            return
        clock = time.monotonic()
        if followed and clock >= self._next_drift:
            self._next_drift = clock + self.drift_every_s
            now = datetime.now(timezone.utc)
            day = now - timedelta(days=1)
            report = drift_report(self.store.log, self.store.content, (day - timedelta(days=7), day), (day, now))
            gauges = drift_gauges(report)
            self._board.publish(gauges, now)
            if self.metrics is not None:
                self.metrics.set_drift(gauges)
            return
        if self.metrics is not None and clock >= self._next_drift_read:
            self._next_drift_read = clock + min(self.drift_every_s, DRIFT_READ_S)
            latest = self._board.latest()
            if latest is not None:
                self.metrics.set_drift(latest[1])

    # -- in a thread (the app, and ``referee follow``) --------------------------------
    def start(self, now: bool = False) -> None:
        """Follow in a thread: a pass every ``interval_s`` (and one at once when ``now``)."""
        self._thread = threading.Thread(target=self._loop, args=(now,), name="referee-follow", daemon=True)
        self._thread.start()

    def _loop(self, now: bool = False) -> None:
        if now:
            self.once()
        while not self._stop.wait(self.interval_s):
            self.once()

    def stop(self, timeout_s: float | None = 10.0) -> None:
        """Stop the thread (waiting up to ``timeout_s`` for the pass it is in), run a last
        pass (what arrived since the last tick) and give the lease back."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        self.once()
        self.close()

    def close(self) -> None:
        if self._lease is not None:
            self._lease.close()
            self._holder = False
