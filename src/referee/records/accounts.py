"""Account actions: strikes that reach a threshold become durable, reversible records.

``records.strikes`` says what an author's standing *is*; this module makes it count:

- ``AccountBook.sync()`` reads the decision log from where it last stopped. A record
  that carries a strike, or that supersedes one (a verdict or an appeal that takes the
  strike back), makes referee recompute its author's standing (``recompute``).
- When the account action the points reach differs from the one in force, a new
  ``account_actions`` record is written: ``impose`` (a higher threshold reached),
  ``lower`` (strikes taken back, a lower threshold still reached) or ``lift`` (none
  reached). A record is never changed; each names the record it ``replaces``. An
  action with ``duration_days`` ends by itself at ``expires_at``.
- The table, read in ``seq`` order, is the platform's outbox (``outbox(after_seq)``,
  ``referee accounts outbox``, ``GET /v1/account-actions``): the platform applies each
  record and keeps the last ``seq`` it applied.
- ``restrictions(author_ids)`` is the engine's ``AccountStandings``: the authors whose
  action in force has an ``item_action`` in the policy. Their items are decided with
  it (a reason of kind ``account``), so referee enforces a suspension where it can.

The order of account actions is the order of their thresholds' points. Records are
written under a lock (SQLite's one writer; ``LOCK TABLE`` on PostgreSQL), so two
processes syncing at once write one record, and ``seq`` order is commit order (a
consumer reading by cursor never skips a record committed late).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from sqlalchemy import or_, select, text, update
from sqlalchemy.engine import Connection

from referee.model import Decision
from referee.model.account import AccountRestriction
from referee.model.base import Frozen
from referee.policy import Policy
from referee.policy.schema import StrikeThreshold
from referee.records.strikes import Standing, standing
from referee.store.sql.account_tables import account_actions, account_state
from referee.store.sql.store import Store
from referee.store.sql.tables import decisions, items

__all__ = ["AccountAction", "AccountBook", "AccountStanding"]

ActionKind = Literal["impose", "lower", "lift"]


class AccountAction(Frozen):
    """One account-action record, as the platform receives it."""

    seq: int
    action_id: str
    author_id: str
    kind: ActionKind
    action: str | None
    replaces: str | None
    points: float
    reason: str
    decision_ids: tuple[str, ...]
    trigger_decision_id: str | None
    created_at: datetime
    expires_at: datetime | None

    def in_force(self, now: datetime) -> bool:
        return self.action is not None and (self.expires_at is None or self.expires_at > now)


class StrikeView(Frozen):
    item_id: str
    decision_id: str
    points: float
    at: datetime


class AccountStanding(Frozen):
    """An author's standing and account actions (``GET /v1/accounts/{author_id}``)."""

    author_id: str
    points: float
    window_days: int | None
    reached: str | None
    in_force: AccountAction | None
    strikes: tuple[StrikeView, ...]
    actions: tuple[AccountAction, ...]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def record_from_row(row: Any) -> AccountAction:
    m = dict(row._mapping)
    m["decision_ids"] = tuple(m["decision_ids"] or ())
    m["created_at"] = _utc(m["created_at"])
    m["expires_at"] = _utc(m["expires_at"])
    return AccountAction(**m)


class AccountBook:
    """Account actions over one SQL ``Store`` and the policy's ``review.strikes``."""

    def __init__(self, store: Store, policy: Policy,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        review = policy.document.review
        self.config = review.strikes if review is not None else None
        self._thresholds: dict[str, StrikeThreshold] = {
            t.account_action: t for t in (self.config.thresholds if self.config else ())}

    # -- reading ---------------------------------------------------------------------
    def rank(self, action: str | None) -> float:
        """Where an account action stands in the policy's order (its threshold's points); 0 for none."""
        t = self._thresholds.get(action or "")
        return t.points if t is not None else 0.0

    def history(self, author_id: str) -> list[AccountAction]:
        q = select(account_actions).where(account_actions.c.author_id == author_id).order_by(account_actions.c.seq)
        with self.store.db.read() as conn:
            return [record_from_row(r) for r in conn.execute(q)]

    def current(self, author_id: str, conn: Connection | None = None) -> AccountAction | None:
        """The author's latest record (in force or not)."""
        q = (select(account_actions).where(account_actions.c.author_id == author_id)
             .order_by(account_actions.c.seq.desc()).limit(1))
        if conn is not None:
            row = conn.execute(q).first()
        else:
            with self.store.db.read() as c:
                row = c.execute(q).first()
        return record_from_row(row) if row is not None else None

    def outbox(self, after_seq: int = 0, limit: int = 100) -> list[AccountAction]:
        """Records after ``after_seq``, in the order they were written (the platform's cursor)."""
        q = (select(account_actions).where(account_actions.c.seq > after_seq)
             .order_by(account_actions.c.seq).limit(limit))
        with self.store.db.read() as conn:
            return [record_from_row(r) for r in conn.execute(q)]

    def standing(self, author_id: str) -> AccountStanding:
        now = self.clock()
        st = standing(self.store, self.policy, author_id, now=now)
        actions = self.history(author_id)
        last = actions[-1] if actions else None
        return AccountStanding(
            author_id=author_id, points=st.points, window_days=self.config.window_days if self.config else None,
            reached=st.account_action, in_force=last if last is not None and last.in_force(now) else None,
            strikes=tuple(StrikeView(item_id=s.item_id, decision_id=s.decision_id, points=s.points, at=s.at)
                          for s in st.strikes),
            actions=tuple(actions))

    def restrictions(self, author_ids: Sequence[str]) -> dict[str, AccountRestriction]:
        """The engine's ``AccountStandings``: authors whose action in force has an ``item_action``."""
        enforced = {name for name, t in self._thresholds.items() if t.item_action is not None}
        if not enforced or not author_ids:
            return {}
        now = self.clock()
        latest: dict[str, AccountAction] = {}
        ids = sorted(set(author_ids))
        with self.store.db.read() as conn:
            for i in range(0, len(ids), 500):
                q = (select(account_actions).where(account_actions.c.author_id.in_(ids[i:i + 500]))
                     .order_by(account_actions.c.seq))
                for row in conn.execute(q):
                    latest[row.author_id] = record_from_row(row)
        out: dict[str, AccountRestriction] = {}
        for author, rec in latest.items():
            threshold = self._thresholds.get(rec.action or "")
            if rec.in_force(now) and threshold is not None and threshold.item_action is not None:
                out[author] = AccountRestriction(author_id=author, record_id=rec.action_id,
                                                 account_action=threshold.account_action,
                                                 item_action=threshold.item_action, until=rec.expires_at)
        return out

    # -- writing ---------------------------------------------------------------------
    def sync(self, limit: int = 10_000) -> list[AccountAction]:
        """Recompute the standing of every author whose strikes the log's new records touch.

        Runs every couple of seconds beside the traffic (the HTTP log follower), so it reads
        only the columns that say whether a record concerns a strike, in SQL, and parses just
        the records that do: most records carry no strike and supersede nothing."""
        if self.config is None:
            return []
        d = decisions.c
        with self.store.db.read() as conn:
            last = conn.execute(select(account_state.c.last_seq).where(account_state.c.id == 1)).scalar() or 0
            upto = min(self.store.log.last_seq(), last + limit)
            if upto <= last:
                return []
            rows = conn.execute(
                select(d.seq, d.decision_id, d.item_id, d.content_hash, d.supersedes, d.strike)
                .where(d.seq > last, d.seq <= upto, or_(d.strike.is_(True), d.supersedes.is_not(None)))
                .order_by(d.seq)).all()
            parents = {r.supersedes for r in rows if r.supersedes}
            struck = {p.decision_id for i in range(0, len(parents), 500) for p in conn.execute(
                select(d.decision_id).where(d.decision_id.in_(sorted(parents)[i:i + 500]), d.strike.is_(True)))}
        latest: dict[tuple[str, str], str] = {}
        for r in rows:
            if r.strike or r.supersedes in struck:
                latest[(r.item_id, r.content_hash)] = r.decision_id  # the latest record of an item is the trigger
        authors = self._authors(list(latest))
        # Only a trigger with an author can change a standing: the rest are never parsed.
        triggers = self.store.log.get_many([latest[key] for key in authors])
        made: list[AccountAction] = []
        for key, decision_id in latest.items():
            author = authors.pop(key, None)
            if author is not None:
                new = self.recompute(author, trigger=triggers[decision_id])
                if new is not None:
                    made.append(new)
        with self.store.db.write() as conn:
            stmt = (self.store.db.insert_ignoring_duplicates(account_state).values(id=1, last_seq=upto)
                    .returning(account_state.c.id))
            if conn.execute(stmt).first() is None:
                conn.execute(update(account_state).where(account_state.c.id == 1).values(last_seq=upto))
        return made

    def _authors(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        ids = sorted({k[0] for k in keys})
        wanted = set(keys)
        with self.store.db.read() as conn:
            for i in range(0, len(ids), 500):
                q = select(items.c.item_id, items.c.content_hash, items.c.author_id).where(
                    items.c.item_id.in_(ids[i:i + 500]))
                for row in conn.execute(q):
                    if (row.item_id, row.content_hash) in wanted and row.author_id:
                        out[(row.item_id, row.content_hash)] = row.author_id
        return out

    def recompute(self, author_id: str, trigger: Decision | None = None) -> AccountAction | None:
        """Write a new record when the account action the author's points reach is not the one in
        force; None when nothing changes."""
        if self.config is None:
            return None
        now = self.clock()
        st = standing(self.store, self.policy, author_id, now=now)
        with self.store.db.write() as conn:
            if self.store.db.dialect.name == "postgresql":
                conn.execute(text("LOCK TABLE account_actions IN EXCLUSIVE MODE"))
            current = self.current(author_id, conn)
            effective = current if current is not None and current.in_force(now) else None
            reached = st.account_action
            held = effective.action if effective is not None else None
            if self.rank(reached) == self.rank(held):
                return None
            kind: ActionKind
            if self.rank(reached) > self.rank(held):
                if trigger is not None and not trigger.strike:
                    return None  # taking a strike back never imposes (an earlier action ran out meanwhile)
                kind = "impose"
            else:
                kind = "lift" if reached is None else "lower"
            row = self._row(author_id, kind, reached, effective, st, trigger, now)
            conn.execute(account_actions.insert().values(**row))
            return record_from_row(conn.execute(select(account_actions).where(
                account_actions.c.action_id == row["action_id"])).one())

    def _row(self, author_id: str, kind: ActionKind, reached: str | None, effective: AccountAction | None,
             st: Standing, trigger: Decision | None, now: datetime) -> dict[str, Any]:
        window = self.config.window_days if self.config else 0
        threshold = self._thresholds.get(reached or "")
        expires = now + timedelta(days=threshold.duration_days) if threshold and threshold.duration_days else None
        points = f"{st.points:g} strike point(s) within {window} days"
        if kind == "impose":
            assert threshold is not None
            reason = f"{points} reached the {threshold.points:g}-point threshold of '{reached}'"
        else:
            took = f" after decision {trigger.decision_id} took a strike back" if trigger and not trigger.strike else ""
            held = effective.action if effective else None
            reason = (f"'{held}' lifted{took}: {points} reach no threshold" if kind == "lift" else
                      f"'{held}' lowered to '{reached}'{took}: {points}")
        replaces = effective.action_id if effective is not None else None
        action_id = "acc_" + hashlib.sha256(
            f"{author_id}|{replaces}|{kind}|{reached}|{now.isoformat()}".encode()).hexdigest()[:28]
        return {"action_id": action_id, "author_id": author_id, "kind": kind, "action": reached,
                "replaces": replaces, "points": st.points, "reason": reason,
                "decision_ids": [s.decision_id for s in st.strikes],
                "trigger_decision_id": trigger.decision_id if trigger is not None else None,
                "created_at": now, "expires_at": expires}
