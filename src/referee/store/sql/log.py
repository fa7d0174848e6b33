"""The decision log over SQL: append-only records, a chain per item, gap-free seq.

The hot path is the engine's: ``heads`` for a batch (one prebuilt query) and
``append`` for the decisions it made (one transaction: content, items, the
sequence counter, decisions, signals; each a compiled ``BulkInsert``). The
engine has just read the heads, so the insert is tried directly; a conflict
(the decision is stored already, or another writer extended the chain first)
surfaces as an IntegrityError, and only then are the decisions stored one by
one, each conflict answered with what the log holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Text, bindparam, cast, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from referee.errors import StoreError
from referee.model import ContentItem, Decision, Record, utcnow
from referee.store.chain import check_parent, check_parent_item, check_supersedes
from referee.store.sql.bulk import BulkInsert, RawJSON
from referee.store.sql.content import ContentRows
from referee.store.sql.database import Database
from referee.store.sql.tables import decision_seq, decisions, items, signals

_d = decisions
_next = decisions.alias("next")
# The payload as the text stored: Decision.model_validate_json parses it in Rust; the
# JSON type would run it through the json module first (and psycopg would parse json).
_PAYLOAD = cast(_d.c.payload, Text).label("payload")

# An item's chain: its root (the partial unique index on item_id where supersedes is null),
# then each record's successor (the unique index on supersedes). Successors are appended
# later, so the chain's highest seq is its head.
_roots = (select(_d.c.item_id, _d.c.decision_id, _d.c.seq)
          .where(_d.c.item_id.in_(bindparam("ids", expanding=True)), _d.c.supersedes.is_(None))
          .cte("chain", recursive=True))
_chain = _roots.union_all(
    select(_next.c.item_id, _next.c.decision_id, _next.c.seq).join(_roots, _next.c.supersedes == _roots.c.decision_id)
)
# Built once with an expanding IN: a statement rebuilt per call with its ids as literals
# cost SQLAlchemy a cache key of every id (~90 of ~330 µs for 25 ids, measured).
_HEADS = select(_d.c.item_id, _PAYLOAD).where(
    _d.c.seq.in_(select(func.max(_chain.c.seq)).group_by(_chain.c.item_id).scalar_subquery())
)
_HISTORY = (select(_d.c.seq, _d.c.recorded_at, _PAYLOAD)
            .where(_d.c.seq.in_(select(_chain.c.seq).scalar_subquery())).order_by(_d.c.seq))
_GET_MANY = select(_d.c.decision_id, _PAYLOAD).where(_d.c.decision_id.in_(bindparam("ids", expanding=True)))
_ITEMS_OF = select(_d.c.decision_id, _d.c.item_id).where(_d.c.decision_id.in_(bindparam("ids", expanding=True)))
_GET = select(_d.c.item_id, _PAYLOAD).where(_d.c.decision_id == bindparam("decision_id"))
_RECORDS = (select(_d.c.seq, _d.c.recorded_at, _PAYLOAD).where(_d.c.seq > bindparam("after"))
            .order_by(_d.c.seq).limit(bindparam("page")))
_ITEM_KNOWN = select(items.c.item_id).where(items.c.item_id == bindparam("item_id"),
                                            items.c.content_hash == bindparam("content_hash"))
# The counter row (decision_seq) is the transaction's lock on the log: appends queue on it,
# and a rolled-back append rolls the counter back too, so seq has no gaps.

#: Records read per query by ``records`` (it holds no cursor open between pages).
PAGE = 1000


class SQLDecisionLog:
    """``DecisionLog`` (and the engine's ``DecisionSink``) over SQL."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._content = ContentRows(db)
        self._insert_decisions = BulkInsert(_d.insert(), _d, db.dialect)
        self._insert_signals = BulkInsert(signals.insert(), signals, db.dialect)
        # The counter's UPDATE as the driver's SQL: Core's compile-cache lookup and result
        # setup were a tenth of a small append's Python time.
        qmark = db.dialect.paramstyle == "qmark"
        self._next_seq_sql = ("UPDATE decision_seq SET last_seq = last_seq + {} WHERE id = 1 RETURNING last_seq"
                              .format("?" if qmark else "%(n)s"))
        self._next_seq_params = (lambda n: (n,)) if qmark else (lambda n: {"n": n})

    # -- writing -----------------------------------------------------------------
    def append(self, pairs: Sequence[tuple[ContentItem, Decision]]) -> list[Decision]:
        return self._append(list(pairs))

    def supersede(self, old_id: str, new: Decision) -> Decision:
        """Record a review or appeal outcome as a new decision that replaces ``old_id``,
        about the item and content ``old_id`` was about (its content need not be
        stored any more). Returns what the log holds: ``new``, or the item's head when
        another record superseded ``old_id`` first."""
        old = self.get(old_id)
        new = check_supersedes(old_id, old, new)
        return self._append([(None, new)])[0]

    def _append(self, pairs: list[tuple[ContentItem | None, Decision]]) -> list[Decision]:
        if not pairs:
            return []
        fresh: dict[str, tuple[ContentItem | None, Decision]] = {}
        for item, decision in pairs:
            fresh.setdefault(decision.decision_id, (item, decision))
        try:
            self._check_parents([d for _, d in fresh.values()])
        except StoreError:
            if len(fresh) > 1:  # store the ones before the bad one, as one by one would
                return [self._append([pair])[0] for pair in pairs]
            raise
        try:
            self._write(list(fresh.values()))
        except IntegrityError as exc:
            if len(fresh) > 1:
                return [self._append([pair])[0] for pair in pairs]
            kept = self._resolve(*next(iter(fresh.values())), exc)
            return [kept for _ in pairs]
        except SQLAlchemyError as exc:
            raise StoreError(f"could not store {len(fresh)} decision(s): {exc}") from exc
        return [fresh[d.decision_id][1] for _, d in pairs]

    def _check_parents(self, batch: list[Decision]) -> None:
        """Each decision that supersedes another supersedes a stored one of its own item.
        (Checked here, once per batch and only for batches that supersede: a trigger doing
        it cost SQLite 8 µs for every row inserted. Records never change, so a check
        before the transaction holds in it.)"""
        wanted = {d.supersedes for d in batch if d.supersedes is not None}
        if not wanted:
            return
        items = {d.decision_id: d.item_id for d in batch}
        missing = [i for i in wanted if i not in items]
        if missing:
            with self._db.read() as conn:
                items.update({r.decision_id: r.item_id for r in conn.execute(_ITEMS_OF, {"ids": missing})})
        for d in batch:
            if d.supersedes is not None:
                check_parent_item(d, items.get(d.supersedes))

    def _write(self, pairs: list[tuple[ContentItem | None, Decision]]) -> None:
        # Every row is built and converted for the driver before the write lock is taken
        # (the other writers wait on it): inside, only the statements and the sequence numbers.
        now = utcnow()
        content_rows = self._content.rows((item for item, _ in pairs if item is not None), now)
        decision_rows = self._insert_decisions.process([_decision_row(d, 0, now) for _, d in pairs])
        signal_rows = self._insert_signals.process([
            {"decision_id": d.decision_id, "detector": s.detector, "detector_version": s.detector_version,
             "category": s.category, "score": s.score}
            for _, d in pairs for s in d.signals
        ])
        with self._db.write() as conn:
            self._content.insert(conn, content_rows)
            last = conn.exec_driver_sql(self._next_seq_sql, self._next_seq_params(len(pairs))).scalar_one()
            for seq, row in enumerate(decision_rows, start=last - len(pairs) + 1):
                row["seq"] = seq
            self._insert_decisions.execute(conn, decision_rows)
            self._insert_signals.execute(conn, signal_rows)

    def _resolve(self, item: ContentItem | None, decision: Decision, exc: IntegrityError) -> Decision:
        """What the log holds instead of ``decision``, which it refused."""
        stored = self.get(decision.decision_id)
        if stored is not None:
            return stored
        if decision.supersedes is not None:
            check_parent(decision, self.get(decision.supersedes))
        if item is None:
            with self._db.read() as conn:
                known = conn.execute(_ITEM_KNOWN, {"item_id": decision.item_id,
                                                   "content_hash": decision.content_hash}).first()
        if item is None and known is None:
            raise StoreError(
                f"decision {decision.decision_id} is about item {decision.item_id!r} with content "
                f"{decision.content_hash}, which the store does not hold; append it with its ContentItem"
            ) from exc
        head = self.head(decision.item_id)
        if head is None:
            raise StoreError(f"could not store decision {decision.decision_id}: {exc.orig}") from exc
        return head

    # -- reading -----------------------------------------------------------------
    def get(self, decision_id: str) -> Decision | None:
        with self._db.read() as conn:
            row = conn.execute(_GET, {"decision_id": decision_id}).first()
        return Decision.model_validate_json(row.payload) if row else None

    def get_many(self, decision_ids: Sequence[str]) -> dict[str, Decision]:
        if not decision_ids:
            return {}
        with self._db.read() as conn:
            rows = conn.execute(_GET_MANY, {"ids": list(decision_ids)}).all()
        return {r.decision_id: Decision.model_validate_json(r.payload) for r in rows}

    def head(self, item_id: str) -> Decision | None:
        return self.heads([item_id]).get(item_id)

    def heads(self, item_ids: Sequence[str]) -> dict[str, Decision]:
        if not item_ids:
            return {}
        with self._db.read() as conn:
            rows = conn.execute(_HEADS, {"ids": list(item_ids)}).all()
        return {r.item_id: Decision.model_validate_json(r.payload) for r in rows}

    def history(self, item_id: str) -> list[Record]:
        with self._db.read() as conn:
            rows = conn.execute(_HISTORY, {"ids": [item_id]}).all()
        return [_record(r) for r in rows]

    def pending_heads(self, limit: int = 100) -> list[Decision]:
        # Provisional records nothing supersedes (the unique index on supersedes answers the
        # NOT EXISTS) whose stages include a pending one; the JSON test is re-checked in Python.
        query = (select(_PAYLOAD)
                 .where(_d.c.provisional.is_(True), _PAYLOAD.like('%"status":"pending"%'),
                        ~select(_next.c.seq).where(_next.c.supersedes == _d.c.decision_id).exists())
                 .order_by(_d.c.seq).limit(limit))
        with self._db.read() as conn:
            found = [Decision.model_validate_json(r.payload) for r in conn.execute(query).all()]
        return [d for d in found if d.pending_stages]

    def list(self, since: datetime | None = None, action: str | None = None, limit: int = 100) -> list[Decision]:
        query = select(_PAYLOAD).order_by(_d.c.created_at.desc(), _d.c.seq.desc()).limit(limit)
        if since is not None:
            query = query.where(_d.c.created_at >= _utc(since))
        if action is not None:
            query = query.where(_d.c.action == action)
        with self._db.read() as conn:
            return [Decision.model_validate_json(r.payload) for r in conn.execute(query).all()]

    def records(self, after_seq: int = 0, limit: int | None = None) -> Iterator[Record]:
        left = limit
        while left is None or left > 0:
            page = PAGE if left is None else min(PAGE, left)
            with self._db.read() as conn:
                rows = conn.execute(_RECORDS, {"after": after_seq, "page": page}).all()
            for row in rows:
                yield _record(row)
            if len(rows) < page:
                return
            after_seq = rows[-1].seq
            if left is not None:
                left -= len(rows)

    def last_seq(self) -> int:
        with self._db.read() as conn:
            return int(conn.execute(select(decision_seq.c.last_seq).where(decision_seq.c.id == 1)).scalar_one())


def _decision_row(d: Decision, seq: int, now: datetime) -> dict[str, Any]:
    return {
        "decision_id": d.decision_id,
        "seq": seq,
        "item_id": d.item_id,
        "content_hash": d.content_hash,
        "input_key": d.input_key,
        "supersedes": d.supersedes,
        "source": d.source,
        "action": d.action.value,
        "strike": d.strike,
        "review_required": d.review_required,
        "provisional": d.provisional,
        "policy_id": d.policy_id,
        "policy_version": d.policy_version,
        "policy_sha256": d.policy_sha256,
        "created_at": _utc(d.created_at),
        "recorded_at": now,
        "payload": RawJSON(d.json_bytes.decode()),
    }


def _utc(value: datetime) -> datetime:
    # SQLite keeps no offset: every stored time is UTC, so comparisons hold.
    if value.tzinfo is timezone.utc:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value if value.utcoffset() == timedelta(0) else value.astimezone(timezone.utc)


def _record(row: Any) -> Record:
    recorded = row.recorded_at
    if recorded.tzinfo is None:
        recorded = recorded.replace(tzinfo=timezone.utc)
    return Record(seq=row.seq, decision=Decision.model_validate_json(row.payload), recorded_at=recorded)
