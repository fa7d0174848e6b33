"""DecisionStore: items, decisions, signals and API keys over SQLAlchemy.

SQLite is the embedded default (one file, zero setup); PostgreSQL is a URL
change (``postgresql+psycopg://user@127.0.0.1/referee``). The schema is owned
by Alembic migrations, applied when the store opens, so an old database file
is upgraded in place rather than recreated.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Iterator
from datetime import datetime
from importlib.resources import files
from typing import Any

import pydantic_core
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine as SAEngine
from sqlalchemy import bindparam, create_engine, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from referee.errors import AuthError, StoreError
from referee.model import ContentItem, Decision, utcnow
from referee.store.bulk import BulkInsert, RawJSON
from referee.store.sqlite import SQLiteFile
from referee.store.tables import api_keys, decisions, items, signals

#: Scopes an API key can carry. ``admin`` implies the others.
SCOPES = ("moderate", "read", "admin")

# The engine's idempotency lookup, once per batch. Built once with an expanding IN:
# a statement rebuilt per call with its ids as literals cost SQLAlchemy a cache key of
# every id (~90 of ~330 µs for 25 ids, measured).
_STORED_DECISIONS = select(decisions.c.decision_id, decisions.c.payload).where(
    decisions.c.decision_id.in_(bindparam("ids", expanding=True))
)


class DecisionStore:
    def __init__(self, url: str = "sqlite:///referee.db", migrate: bool = True) -> None:
        self.url = url
        try:
            # A database that does not answer must fail the call, not hang it.
            connect_args = {"connect_timeout": 5} if url.startswith("postgresql") else {}
            # JSON columns are written by pydantic-core (Rust) rather than the json module:
            # serialising decision payloads was ~5 % of a busy server's CPU.
            # pre-ping notices a server that dropped the connection; a SQLite file cannot.
            self._db: SAEngine = create_engine(
                url, future=True, pool_pre_ping=not url.startswith("sqlite"), pool_timeout=10,
                connect_args=connect_args, json_serializer=_to_json,
            )
        except (SQLAlchemyError, ImportError) as exc:
            raise StoreError(f"cannot open decision store {url!r}: {exc}") from exc
        self._sqlite = SQLiteFile(self._db) if self._db.dialect.name == "sqlite" else None
        dialect = self._db.dialect
        self._insert_items = BulkInsert(self._insert_ignoring_duplicates(items), items, dialect)
        self._insert_decisions = BulkInsert(insert(decisions), decisions, dialect)
        self._insert_signals = BulkInsert(insert(signals), signals, dialect)
        if migrate:
            self.migrate()

    def migrate(self) -> None:
        """Bring the schema to the newest migration (a no-op when it is current)."""
        config = Config(str(files("referee.store") / "alembic.ini"))
        config.set_main_option("script_location", str(files("referee.store") / "migrations"))
        try:
            with self._db.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot migrate decision store {self.url!r}: {exc}") from exc

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        self._db.dispose()

    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        """A write transaction. On SQLite, writers first queue on a lock (see ``store.sqlite``)."""
        with self._sqlite.writing() if self._sqlite else contextlib.nullcontext():
            with self._db.begin() as conn:
                yield conn

    # -- decisions --------------------------------------------------------
    def get_decision(self, decision_id: str) -> Decision | None:
        with self._db.connect() as conn:
            row = conn.execute(select(decisions.c.payload).where(decisions.c.decision_id == decision_id)).first()
        return Decision.model_validate(row.payload) if row else None

    def get_decisions(self, decision_ids: list[str]) -> dict[str, Decision]:
        """The stored decisions among these ids (one query for a whole batch)."""
        if not decision_ids:
            return {}
        with self._db.connect() as conn:
            rows = conn.execute(_STORED_DECISIONS, {"ids": decision_ids}).all()
        return {r.decision_id: Decision.model_validate(r.payload) for r in rows}

    def ping(self) -> None:
        """Raise StoreError unless the database answers (readiness checks)."""
        try:
            with self._db.connect() as conn:
                conn.execute(select(1))
        except SQLAlchemyError as exc:
            raise StoreError(f"decision store {self.url!r} is not reachable: {exc}") from exc

    def save_decision(self, item: ContentItem, decision: Decision) -> Decision:
        """Insert the decision (and the item, once). If a decision with this id
        already exists, return the stored one: moderation is idempotent."""
        return self.save_decisions([(item, decision)])[0]

    def save_decisions(self, pairs: list[tuple[ContentItem, Decision]]) -> list[Decision]:
        """Store a batch in one transaction (one fsync, not one per item). A decision
        whose id is already stored comes back as stored, never written twice.

        The engine has just looked the ids up, so the insert is tried directly; the
        rare race with another writer surfaces as an IntegrityError and falls back
        to one by one.
        """
        fresh: dict[str, tuple[ContentItem, Decision]] = {}
        for item, decision in pairs:
            fresh.setdefault(decision.decision_id, (item, decision))
        try:
            with self._write() as conn:
                self._insert_items.run(conn, _item_rows(item for item, _ in fresh.values()))
                self._insert_decisions.run(conn, [_decision_row(d) for _, d in fresh.values()])
                self._insert_signals.run(conn, [_signal_row(d.decision_id, s) for _, d in fresh.values()
                                                for s in d.signals])
        except IntegrityError:
            if len(fresh) > 1:
                return [self.save_decisions([pair])[0] for pair in pairs]
            stored = self.get_decision(next(iter(fresh)))
            if stored is None:
                raise
            return [stored for _ in pairs]
        except SQLAlchemyError as exc:
            raise StoreError(f"could not store {len(pairs)} decision(s): {exc}") from exc
        return [fresh[d.decision_id][1] for _, d in pairs]

    def supersede(self, old_id: str, new: Decision) -> Decision:
        """Record a review or appeal outcome as a new decision that replaces ``old_id``."""
        old = self.get_decision(old_id)
        if old is None:
            raise StoreError(f"no decision {old_id!r} to supersede")
        if new.supersedes != old_id:
            new = new.model_copy(update={"supersedes": old_id})
        item = self.get_item(old.item_id, old.content_hash)
        if item is None:
            raise StoreError(f"decision {old_id} has no stored item")
        return self.save_decision(item, new)

    def history(self, item_id: str) -> list[Decision]:
        """Every decision about an item, oldest first."""
        with self._db.connect() as conn:
            rows = conn.execute(
                select(decisions.c.payload).where(decisions.c.item_id == item_id).order_by(decisions.c.created_at)
            ).all()
        return [Decision.model_validate(r.payload) for r in rows]

    def list_decisions(
        self, since: datetime | None = None, action: str | None = None, limit: int = 100
    ) -> list[Decision]:
        query = select(decisions.c.payload).order_by(decisions.c.created_at.desc()).limit(limit)
        if since is not None:
            query = query.where(decisions.c.created_at >= since)
        if action is not None:
            query = query.where(decisions.c.action == action)
        with self._db.connect() as conn:
            return [Decision.model_validate(r.payload) for r in conn.execute(query).all()]

    def iter_decisions(self, batch: int = 1000) -> Iterator[Decision]:
        with self._db.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(
                select(decisions.c.payload).order_by(decisions.c.created_at)
            )
            for row in result:
                yield Decision.model_validate(row.payload)

    # -- items ------------------------------------------------------------
    def get_item(self, item_id: str, content_hash: str) -> ContentItem | None:
        with self._db.connect() as conn:
            row = conn.execute(
                select(items).where(items.c.item_id == item_id, items.c.content_hash == content_hash)
            ).first()
        if row is None:
            return None
        return ContentItem(
            id=row.item_id,
            surface=row.surface,
            text=row.text,
            author_id=row.author_id,
            country=row.country,
            language=row.language,
            created_at=row.item_created_at,  # ContentItem reads SQLite's offset-less value as UTC
            **(row.meta or {}),
        )

    def _insert_ignoring_duplicates(self, table: Any) -> Any:
        if self._db.dialect.name == "postgresql":
            return pg_insert(table).on_conflict_do_nothing()
        if self._db.dialect.name == "sqlite":
            return sqlite_insert(table).on_conflict_do_nothing()
        return insert(table).prefix_with("IGNORE")  # MySQL/MariaDB

    # -- API keys ---------------------------------------------------------
    def create_key(self, name: str, scopes: list[str]) -> str:
        """Create a key and return it in full; only its hash is stored, so this is
        the one time anybody sees it."""
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown or not scopes:
            raise AuthError(f"scopes must be some of {', '.join(SCOPES)}; got {scopes}")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(24)
        with self._db.begin() as conn:
            conn.execute(
                insert(api_keys).values(
                    key_id=key_id,
                    secret_hash=_hash_secret(secret),
                    name=name,
                    scopes=",".join(sorted(set(scopes))),
                    created_at=utcnow(),
                )
            )
        return f"rk_{key_id}_{secret}"

    def check_key(self, key: str) -> tuple[str, frozenset[str]]:
        """Return (key id, scopes) for a valid key, else raise AuthError."""
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != "rk":
            raise AuthError("malformed API key: expected 'rk_<id>_<secret>' as printed by `referee keys create`")
        _, key_id, secret = parts
        with self._db.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.secret_hash, _hash_secret(secret)):
            raise AuthError("invalid or revoked API key")
        return key_id, frozenset(row.scopes.split(","))

    def revoke_key(self, key_id: str) -> None:
        with self._db.begin() as conn:
            conn.execute(api_keys.update().where(api_keys.c.key_id == key_id).values(revoked_at=utcnow()))

    def list_keys(self) -> list[dict[str, Any]]:
        with self._db.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at)).all()
        return [
            {"key_id": r.key_id, "name": r.name, "scopes": r.scopes, "created_at": r.created_at,
             "revoked_at": r.revoked_at}
            for r in rows
        ]


def _item_rows(batch: Iterable[ContentItem]) -> list[dict[str, Any]]:
    """One row per item not yet in this batch (an item is its id plus its content hash);
    the insert skips those already stored."""
    now = utcnow()
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for item in batch:
        rows.setdefault((item.id, item.content_hash), {
            "item_id": item.id,
            "content_hash": item.content_hash,
            "surface": item.surface,
            "text": item.text,
            "author_id": item.author_id,
            "country": item.country,
            "language": item.language,
            "item_created_at": item.created_at,
            "first_seen_at": now,
            "meta": item.model_dump(mode="json", include={"media", "context"}),
        })
    return list(rows.values())


def _decision_row(decision: Decision) -> dict[str, Any]:
    return {
        "decision_id": decision.decision_id,
        "item_id": decision.item_id,
        "content_hash": decision.content_hash,
        "action": decision.action.value,
        "strike": decision.strike,
        "review_required": decision.review_required,
        "policy_id": decision.policy_id,
        "policy_version": decision.policy_version,
        "source": decision.source,
        "supersedes": decision.supersedes,
        "created_at": decision.created_at,
        "payload": RawJSON(decision.json_bytes.decode()),
    }


def _signal_row(decision_id: str, s: Any) -> dict[str, Any]:
    return {"decision_id": decision_id, "detector": s.detector, "detector_version": s.detector_version,
            "category": s.category, "score": s.score}


def _to_json(value: Any) -> str:
    if isinstance(value, RawJSON):
        return value
    return pydantic_core.to_json(value).decode()


def _hash_secret(secret: str) -> str:
    # Keys are long random tokens, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(secret.encode()).hexdigest()
