"""The store as Parquet files that Spark jobs read: the decision log, the items' metadata, appeals.

A batch job reads the store once, here, on the driver, in pages (bounded
memory), and writes files every executor can read; the store is never queried
from executors. Three writers:

- ``export_log``: the whole log for the compliance aggregates (``records.parquet``,
  ``items.parquet`` with the metadata the transparency report needs, and
  ``appeals.parquet``, ``notices.parquet``, ``account_actions.parquet`` when the
  store has those tables). No user text, no author id, no notifier contact: the
  items' context is reduced to the DSA notice type.
- ``write_heads``: every item's current decision, the baseline of a re-scan.
- ``write_held_items``: every item whose head's content is still held (not
  erased), as item JSON: the catalogue a re-scan re-decides.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Text, cast, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from referee.errors import StoreError
from referee.records.reasons import NOTICE_KEY
from referee.store import Store
from referee.store.sql.content import item_from_row
from referee.store.sql.tables import content, decisions, items, metadata

#: Rows read from the store per query, and written per Parquet row group.
PAGE = 5_000

UTC_US = pa.timestamp("us", tz="UTC")

RECORDS_SCHEMA = pa.schema([
    ("seq", pa.int64()), ("recorded_at", UTC_US), ("decision_id", pa.string()), ("item_id", pa.string()),
    ("content_hash", pa.string()), ("supersedes", pa.string()), ("source", pa.string()), ("action", pa.string()),
    ("strike", pa.bool_()), ("categories", pa.list_(pa.string())), ("automated_detection", pa.bool_()),
    ("automated_decision", pa.bool_()), ("surface", pa.string()), ("country", pa.string()),
    ("created_at", UTC_US), ("decision", pa.string()),
])
ITEMS_SCHEMA = pa.schema([
    ("item_id", pa.string()), ("content_hash", pa.string()), ("created_at", UTC_US),
    ("first_seen_at", UTC_US), ("notice", pa.string()),
])
APPEALS_SCHEMA = pa.schema([
    ("appeal_id", pa.string()), ("status", pa.string()), ("received_at", pa.float64()),
    ("decided_at", pa.float64()),
])
#: DSA notices without the notifier's contact, the URL or the explanation.
NOTICES_SCHEMA = pa.schema([
    ("notice_id", pa.string()), ("item_id", pa.string()), ("category", pa.string()),
    ("trusted_flagger", pa.bool_()), ("received_at", pa.float64()), ("decided_at", pa.float64()),
    ("outcome_action", pa.string()),
])
#: Account actions without the author id.
ACCOUNT_ACTIONS_SCHEMA = pa.schema([("kind", pa.string()), ("action", pa.string()), ("created_at", UTC_US)])
#: A re-scan's baseline: each item's head.
HEADS_SCHEMA = pa.schema([
    ("item_id", pa.string()), ("content_hash", pa.string()), ("action", pa.string()),
    ("categories", pa.list_(pa.string())), ("source", pa.string()),
])
#: A re-scan's input: where the item came from (for error messages) and its JSON.
ITEMS_JSON_SCHEMA = pa.schema([("where", pa.string()), ("raw", pa.binary())])


def _utc(value: datetime | None) -> datetime | None:
    # SQLite keeps no offset: every stored time is UTC.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def write_parquet(path: Path, schema: pa.Schema, rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` to one Parquet file, a row group per ``PAGE`` rows; returns the count.
    An empty input still writes a file with the schema, so readers see no-rows, not no-file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    batch: list[dict[str, Any]] = []
    with pq.ParquetWriter(path, schema) as writer:
        for row in rows:
            batch.append(row)
            if len(batch) >= PAGE:
                writer.write_table(pa.Table.from_pylist(batch, schema))
                count += len(batch)
                batch = []
        if batch or count == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema))
            count += len(batch)
    return count


@dataclass(frozen=True)
class Exported:
    records: int
    items: int
    #: Rows of the optional tables (appeals, notices, account actions) the store has.
    optional: dict[str, int]
    files: tuple[Path, ...]


#: The store's optional tables (later migrations) an export copies when they are there.
OPTIONAL = {"appeals": APPEALS_SCHEMA, "notices": NOTICES_SCHEMA, "account_actions": ACCOUNT_ACTIONS_SCHEMA}


def export_log(store: Store, out: Path) -> Exported:
    """Write the decision log, the items' metadata and the optional tables under ``out`` (see module doc)."""
    try:
        n_records = write_parquet(out / "records.parquet", RECORDS_SCHEMA, _record_rows(store))
        n_items = write_parquet(out / "items.parquet", ITEMS_SCHEMA, _item_rows(store))
        files = [out / "records.parquet", out / "items.parquet"]
        optional: dict[str, int] = {}
        with store.db.read() as conn:
            present = [name for name in OPTIONAL if inspect(conn).has_table(name)]
        for name in present:
            optional[name] = write_parquet(out / f"{name}.parquet", OPTIONAL[name], _table_rows(store, name))
            files.append(out / f"{name}.parquet")
    except SQLAlchemyError as exc:
        raise StoreError(f"could not export {store.url!r}: {exc}") from exc
    return Exported(n_records, n_items, optional, tuple(files))


def _record_rows(store: Store) -> Iterator[dict[str, Any]]:
    for record in store.log.records():
        d = record.decision
        yield {
            "seq": record.seq, "recorded_at": _utc(record.recorded_at), "decision_id": d.decision_id,
            "item_id": d.item_id, "content_hash": d.content_hash, "supersedes": d.supersedes, "source": d.source,
            "action": d.action.value, "strike": d.strike, "categories": list(d.categories),
            "automated_detection": d.automated_detection, "automated_decision": d.automated_decision,
            "surface": d.surface, "country": d.country, "created_at": _utc(d.created_at),
            "decision": d.json_bytes.decode(),
        }


def _item_rows(store: Store) -> Iterator[dict[str, Any]]:
    query = select(items.c.item_id, items.c.content_hash, items.c.created_at, items.c.first_seen_at,
                   items.c.context).order_by(items.c.item_id, items.c.content_hash).limit(PAGE)
    after: tuple[str, str] | None = None
    while True:
        page = query if after is None else query.where(
            (items.c.item_id > after[0]) | ((items.c.item_id == after[0]) & (items.c.content_hash > after[1])))
        with store.db.read() as conn:
            rows = conn.execute(page).all()
        for r in rows:
            context = r.context if isinstance(r.context, dict) else {}
            notice = context.get(NOTICE_KEY)
            yield {"item_id": r.item_id, "content_hash": r.content_hash, "created_at": _utc(r.created_at),
                   "first_seen_at": _utc(r.first_seen_at), "notice": notice if isinstance(notice, str) else None}
        if len(rows) < PAGE:
            return
        after = (rows[-1].item_id, rows[-1].content_hash)


def _table_rows(store: Store, name: str) -> Iterator[dict[str, Any]]:
    """The schema's columns of one optional table (small tables: one query)."""
    table = metadata.tables[name]
    schema = OPTIONAL[name]
    with store.db.read() as conn:
        for r in conn.execute(select(*(table.c[f.name] for f in schema))):
            row = dict(r._mapping)
            yield {k: _utc(v) if isinstance(v, datetime) else v for k, v in row.items()}


# -- a re-scan's inputs --------------------------------------------------------------
_successor = decisions.alias("successor")
_HEAD = ~select(_successor.c.seq).where(_successor.c.supersedes == decisions.c.decision_id).exists()


def _heads(store: Store, *columns: Any) -> Iterator[Any]:
    """Head rows (decisions nothing supersedes) in ``seq`` order, a page per query."""
    query = select(decisions.c.seq, *columns).where(_HEAD).order_by(decisions.c.seq).limit(PAGE)
    after = 0
    while True:
        try:
            with store.db.read() as conn:
                rows = conn.execute(query.where(decisions.c.seq > after)).all()
        except SQLAlchemyError as exc:
            raise StoreError(f"could not read the heads of {store.url!r}: {exc}") from exc
        yield from rows
        if len(rows) < PAGE:
            return
        after = rows[-1].seq


def write_heads(store: Store, path: Path) -> int:
    """Every item's head as a baseline row (``HEADS_SCHEMA``); returns the count."""
    def rows() -> Iterator[dict[str, Any]]:
        for r in _heads(store, decisions.c.item_id, decisions.c.content_hash, decisions.c.action,
                        decisions.c.source, cast(decisions.c.payload, Text).label("payload")):
            yield {"item_id": r.item_id, "content_hash": r.content_hash, "action": r.action,
                   "categories": json.loads(r.payload).get("categories", []), "source": r.source}

    return write_parquet(path, HEADS_SCHEMA, rows())


@dataclass
class HeldItems:
    """What ``write_held_items`` wrote, and how many items it left out because their content was erased."""

    written: int = 0
    erased: int = 0


def write_held_items(store: Store, path: Path) -> HeldItems:
    """Every item whose head's content is still held, as ``(where, raw item JSON)`` rows."""
    found = HeldItems()
    columns = [items, cast(content.c.parts, Text).label("parts")]
    join = (select(decisions.c.seq, *columns)
            .join(items, (items.c.item_id == decisions.c.item_id) & (items.c.content_hash == decisions.c.content_hash))
            .join(content, content.c.content_hash == items.c.content_hash)
            .where(_HEAD).order_by(decisions.c.seq).limit(PAGE))

    def rows() -> Iterator[dict[str, Any]]:
        after = 0
        while True:
            try:
                with store.db.read() as conn:
                    page = conn.execute(join.where(decisions.c.seq > after)).all()
            except SQLAlchemyError as exc:
                raise StoreError(f"could not read the items of {store.url!r}: {exc}") from exc
            for r in page:
                if r.parts is None:
                    found.erased += 1
                    continue
                item = item_from_row(r._mapping, json.loads(r.parts))
                yield {"where": f"store item {r.item_id!r}", "raw": item.model_dump_json().encode()}
            if len(page) < PAGE:
                return
            after = page[-1].seq

    found.written = write_parquet(path, ITEMS_JSON_SCHEMA, rows())
    return found


__all__ = [
    "ACCOUNT_ACTIONS_SCHEMA",
    "APPEALS_SCHEMA",
    "HEADS_SCHEMA",
    "ITEMS_JSON_SCHEMA",
    "ITEMS_SCHEMA",
    "NOTICES_SCHEMA",
    "OPTIONAL",
    "RECORDS_SCHEMA",
    "Exported",
    "HeldItems",
    "export_log",
    "write_heads",
    "write_held_items",
    "write_parquet",
]
