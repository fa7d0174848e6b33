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

from referee.policy import Policy
from referee.records import notices
from referee.records.accounts import AccountBook
from referee.records.chain import AuditChain
from referee.records.review import ReviewDesk
from referee.store import Store

log = logging.getLogger(__name__)


class LogFollower:
    def __init__(self, store: Store, policy: Policy, interval_s: float, audit_key_env: str | None = None) -> None:
        self.store = store
        self.policy = policy
        self.interval_s = interval_s
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
        )
        for step, run in steps:
            try:
                run()
            except Exception:  # noqa: BLE001 - the next tick retries from where the store stopped
                log.exception("%s failed; retrying in %.1f s", step, self.interval_s)

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
