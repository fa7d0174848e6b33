"""Following the decision log beside the traffic: review queues, notices, account
actions and the audit chain.

Held decisions enter the review queues, notices about items referee now knows
are routed and decided notices settled, strikes become account actions, and
new records are linked into the tamper-evident chain, a couple of seconds
after they are stored, without
adding to any request: one thread per app reads the log from where it last
stopped (``ReviewDesk.sync``, ``AuditChain.seal``; both are incremental and
safe to run from several processes, which the store serialises). A pass that
fails is logged and retried at the next tick; nothing is lost, since both
resume from what the store last recorded.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timedelta, timezone

from referee.obs import Metrics
from referee.online.drift import drift_gauges, drift_report
from referee.policy import Policy
from referee.records import notices
from referee.records.accounts import AccountBook
from referee.records.chain import AuditChain
from referee.records.review import ReviewDesk
from referee.store import Store

log = logging.getLogger(__name__)


class LogFollower:
    def __init__(self, store: Store, policy: Policy, interval_s: float, audit_key_env: str | None = None,
                 metrics: Metrics | None = None, drift_every_s: float = 0.0) -> None:
        self.store = store
        self.policy = policy
        self.interval_s = interval_s
        # Drift reads whole windows of the log: every few minutes, never per scrape.
        self.metrics = metrics
        self.drift_every_s = drift_every_s
        self._next_drift = 0.0
        key = os.environ.get(audit_key_env, "") if audit_key_env else ""
        self._chain = AuditChain(store.db, key=key.encode() or None)
        self._desk = ReviewDesk(store, policy)
        self._accounts = AccountBook(store, policy)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def once(self) -> None:
        """One pass: queue what needs review, route and settle notices, turn strikes into
        account actions, then seal what is new."""
        steps = (
            ("review sync", self._desk.sync),
            ("notice routing", lambda: notices.route_pending(self._desk)),
            ("notice outcomes", lambda: notices.settle(self._desk)),
            ("account actions", self._accounts.sync),
            ("audit seal", self._chain.seal),
            ("drift", self._drift),
        )
        for step, run in steps:
            try:
                run()
            except Exception:  # noqa: BLE001 - the next tick retries from where the store stopped
                log.exception("%s failed; retrying in %.1f s", step, self.interval_s)

    def _drift(self) -> None:
        """Yesterday against the week before it, as gauges on ``/metrics`` (docs/online-quality.md)."""
        if self.metrics is None or self.drift_every_s <= 0 or time.monotonic() < self._next_drift:
            return
        self._next_drift = time.monotonic() + self.drift_every_s
        now = datetime.now(timezone.utc)
        day = now - timedelta(days=1)
        report = drift_report(self.store.log, self.store.content, (day - timedelta(days=7), day), (day, now))
        self.metrics.set_drift(drift_gauges(report))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="referee-follow", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.once()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.once()  # what arrived since the last tick
