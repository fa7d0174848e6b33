"""The content store over SQL: items' parts by content hash, apart from the decisions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Connection, Text, bindparam, cast, null, select, update
from sqlalchemy.exc import SQLAlchemyError

from referee.errors import StoreError
from referee.model import ContentItem, Part, TextPart, utcnow
from referee.store.sql.bulk import BulkInsert, RawJSON
from referee.store.sql.database import Database
from referee.store.sql.tables import content, items

_PARTS: TypeAdapter[tuple[Part, ...]] = TypeAdapter(tuple[Part, ...])
_CONTEXT: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])
_EMPTY = RawJSON("{}")

_GET = (
    select(items, cast(content.c.parts, Text).label("parts"))
    .join(content, content.c.content_hash == items.c.content_hash)
    .where(items.c.item_id == bindparam("item_id"),
           items.c.content_hash == bindparam("content_hash"))
)

# Erased content (parts NULL) has no context either, as ``get`` returns no item for it.
_CONTEXTS = (
    select(items.c.item_id, items.c.content_hash, cast(items.c.context, Text).label("context"))
    .join(content, content.c.content_hash == items.c.content_hash)
    .where(items.c.item_id.in_(bindparam("ids", expanding=True)), content.c.parts.is_not(None))
)


class ContentRows:
    """The two inserts that store items: their content (once per hash) and their rows
    (once per item id and hash). Shared by the content store and the decision log,
    which stores an item's content in the same transaction as its decision."""

    def __init__(self, db: Database) -> None:
        self._content = BulkInsert(db.insert_ignoring_duplicates(content), content, db.dialect)
        self._items = BulkInsert(db.insert_ignoring_duplicates(items), items, db.dialect)

    def write(self, conn: Connection, batch: Iterable[ContentItem], now: datetime) -> None:
        self.insert(conn, self.rows(batch, now))

    def insert(self, conn: Connection, rows: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
        """Send what ``rows`` prepared (in the writer's transaction)."""
        self._content.execute(conn, rows[0])
        self._items.execute(conn, rows[1])

    def rows(self, batch: Iterable[ContentItem], now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The content and item rows of ``batch``, ready for the driver: built before the
        write lock is taken, so the lock is held only while they are sent."""
        contents: dict[str, dict[str, Any]] = {}
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for item in batch:
            key = (item.id, item.content_hash)
            if key in rows:
                continue
            if item.content_hash not in contents:
                contents[item.content_hash] = {
                    "content_hash": item.content_hash,
                    "parts": RawJSON(_PARTS.dump_json(item.parts).decode()),
                    "stored_at": now,
                    "erased_at": None,
                }
            rows[key] = {
                "item_id": item.id,
                "content_hash": item.content_hash,
                "surface": item.surface,
                "author_id": item.author_id,
                "country": item.country,
                "language": item.language,
                "created_at": item.created_at,
                "context": RawJSON(_CONTEXT.dump_json(item.context).decode()) if item.context else _EMPTY,
                "first_seen_at": now,
            }
        return self._content.process(list(contents.values())), self._items.process(list(rows.values()))


class SQLContentStore:
    """``ContentStore`` over SQL. Erasing content empties its row (a tombstone stays, so
    the decisions that name the hash still point at something); content erased once
    stays erased, even when the same content is posted again."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._rows = ContentRows(db)

    def put(self, batch: Sequence[ContentItem]) -> None:
        if not batch:
            return
        try:
            with self._db.write() as conn:
                self._rows.write(conn, batch, utcnow())
        except SQLAlchemyError as exc:
            raise StoreError(f"could not store {len(batch)} item(s): {exc}") from exc

    def get(self, item_id: str, content_hash: str) -> ContentItem | None:
        with self._db.read() as conn:
            row = conn.execute(_GET, {"item_id": item_id, "content_hash": content_hash}).first()
        if row is None or row.parts is None:
            return None
        return item_from_row(row._mapping, json.loads(row.parts))

    def contexts(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        wanted = set(keys)
        if not wanted:
            return {}
        ids = sorted({item_id for item_id, _ in wanted})
        with self._db.read() as conn:  # in chunks: SQLite binds at most 32,766 parameters a statement
            rows = [r for i in range(0, len(ids), 1000)
                    for r in conn.execute(_CONTEXTS, {"ids": ids[i:i + 1000]}).all()]
        return {(r.item_id, r.content_hash): _CONTEXT.validate_json(r.context) for r in rows
                if (r.item_id, r.content_hash) in wanted}

    def erase(self, content_hash: str) -> bool:
        try:
            with self._db.write() as conn:
                done = conn.execute(
                    update(content)
                    .where(content.c.content_hash == content_hash, content.c.parts.is_not(None))
                    .values(parts=null(), erased_at=utcnow())
                )
        except SQLAlchemyError as exc:
            raise StoreError(f"could not erase content {content_hash!r}: {exc}") from exc
        return bool(done.rowcount)


def item_from_row(row: Any, parts: list[dict[str, Any]]) -> ContentItem:
    fields = {
        "id": row["item_id"],
        "surface": row["surface"],
        "parts": parts,
        "author_id": row["author_id"],
        "country": row["country"],
        "language": row["language"],
        "created_at": row["created_at"],  # ContentItem reads SQLite's offset-less value as UTC
        "context": row["context"] or {},
    }
    try:
        return ContentItem.model_validate(fields)
    except ValidationError:
        # Content an older release accepted and today's model refuses (an item with empty
        # text): returned as stored rather than lost.
        return ContentItem.model_construct(**{**fields, "parts": tuple(_loose_part(p) for p in parts)})


def _loose_part(part: dict[str, Any]) -> Any:
    try:
        return _PART.validate_python(part)
    except ValidationError:
        return TextPart.model_construct(**part)


_PART: TypeAdapter[Part] = TypeAdapter(Part)
