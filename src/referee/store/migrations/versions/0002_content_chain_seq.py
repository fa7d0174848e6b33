"""Content apart from decisions, a chain per item, gap-free sequence numbers, append-only for real.

Revision ID: 0002
Revises: 0001

What changes:

- ``content`` (new): the items' parts as JSON, by content hash. The text
  moves out of ``items`` into it (one text part ``text``/``body``, and the
  old ``media`` references as ``media0``, ``media1``... parts).
- ``items`` keeps the item's metadata; ``context`` becomes a column.
- ``decisions`` gains ``seq`` (gap-free, assigned here in the order the old
  rows were written), ``input_key``, ``provisional``, ``policy_sha256`` and
  ``recorded_at``; ``supersedes`` becomes unique and an item has one root, so
  its decisions form one chain. The old release could leave two roots for an
  item (re-moderation under a new policy version) or two records superseding
  one decision; such records are linked after the item's previous record, in
  the order they were written.
- The payloads are rewritten once, to today's Decision: ``evidence.text`` (a
  copy of the user's words) is dropped and span evidence names the part
  ``text``; ``input_key`` is the old decision id (the old id hashed the same
  inputs but the policy's content); ``policy_sha256`` is ``"unknown"``;
  ``provisional`` is whether a detector failed. For an item that was only
  text, the content hash is recomputed the way today's ``ContentItem``
  computes it, so re-moderating that item finds its decisions (and a
  reviewer's verdict stands); items with media keep their old hash, since
  their bytes' sha256 was never recorded.
- ``decision_seq`` (new): the counter ``seq`` is drawn from.
- Triggers refuse UPDATE and DELETE on ``decisions`` and ``signals`` (and
  TRUNCATE on PostgreSQL) for everyone once this migration has run.

The tables are defined here as they are at this revision, not imported, so
later changes to ``referee.store.sql.tables`` cannot change what this
migration does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
CHUNK = 1000
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _new_tables() -> sa.MetaData:
    m = sa.MetaData(naming_convention=NAMING)
    sa.Table(
        "content", m,
        sa.Column("content_hash", sa.String(64), primary_key=True),
        sa.Column("parts", sa.JSON(none_as_null=True)),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True)),
        )
    sa.Table(
        "items", m,
        sa.Column("item_id", sa.String(256), primary_key=True),
        sa.Column("content_hash", sa.String(64), sa.ForeignKey("content.content_hash"), primary_key=True),
        sa.Column("surface", sa.String(64), nullable=False),
        sa.Column("author_id", sa.String(256)),
        sa.Column("country", sa.String(2)),
        sa.Column("language", sa.String(35)),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Column("context", sa.JSON, nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        )
    sa.Table(
        "decisions", m,
        sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("item_id", sa.String(256), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("input_key", sa.String(64), nullable=False),
        sa.Column("supersedes", sa.String(64)),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("strike", sa.Boolean, nullable=False),
        sa.Column("review_required", sa.Boolean, nullable=False),
        sa.Column("provisional", sa.Boolean, nullable=False),
        sa.Column("policy_id", sa.String(128), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("policy_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.UniqueConstraint("decision_id"),
        sa.ForeignKeyConstraint(["supersedes"], ["decisions.decision_id"], name="fk_decisions_supersedes_decisions"),
        sa.ForeignKeyConstraint(["item_id", "content_hash"], ["items.item_id", "items.content_hash"],
                                name="fk_decisions_content_items"),
        sa.Index("uq_decisions_root", "item_id", unique=True,
                 sqlite_where=sa.text("supersedes IS NULL"), postgresql_where=sa.text("supersedes IS NULL")),
        sa.Index("uq_decisions_supersedes", "supersedes", unique=True,
                 sqlite_where=sa.text("supersedes IS NOT NULL"), postgresql_where=sa.text("supersedes IS NOT NULL")),
        sa.Index(None, "created_at"),
    )
    sa.Table(
        "signals", m,
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("decision_id", sa.String(64), sa.ForeignKey("decisions.decision_id"), nullable=False),
        sa.Column("detector", sa.String(64), nullable=False),
        sa.Column("detector_version", sa.String(128), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Index(None, "decision_id"),
    )
    sa.Table(
        "decision_seq", m,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_seq", SEQ, nullable=False),
    )
    sa.Table(
        "migrate_0002_map", m,
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("supersedes", sa.String(64)),
        sa.Column("content_hash", sa.String(64), nullable=False),
    )
    return m


def upgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    op.execute("DROP TRIGGER IF EXISTS decisions_append_only" + (" ON decisions" if pg else ""))
    for name in ("signals", "decisions", "items"):
        op.rename_table(name, f"{name}_old")
        if pg:
            # Free the names the new tables take: the serial's and, where 0001 ran under the
            # naming convention (a database created by this release), the primary key's.
            if name != "decisions":
                op.execute(f"ALTER SEQUENCE IF EXISTS {name}_pk_seq RENAME TO {name}_old_pk_seq")
            op.execute(f"ALTER INDEX IF EXISTS pk_{name} RENAME TO {name}_old_pkey")
    new = _new_tables()
    new.create_all(bind)
    old = sa.MetaData()
    items_old = sa.Table("items_old", old, autoload_with=bind)
    decisions_old = sa.Table("decisions_old", old, autoload_with=bind)

    known = _copy_items(bind, items_old, new)
    _copy_decisions(bind, decisions_old, new, known)
    bind.execute(sa.text(
        "INSERT INTO signals (decision_id, detector, detector_version, category, score) "
        "SELECT decision_id, detector, detector_version, category, score FROM signals_old ORDER BY pk"
    ))
    for name in ("migrate_0002_map", "signals_old", "decisions_old", "items_old"):
        op.drop_table(name)
    bind.execute(sa.text("INSERT INTO decision_seq (id, last_seq) SELECT 1, COALESCE(MAX(seq), 0) FROM decisions"))
    _append_only(pg)


def downgrade() -> None:
    raise RuntimeError("revision 0002 cannot be undone (it rewrote the decision payloads); restore a backup")


def _append_only(pg: bool) -> None:
    if pg:
        op.execute(
            "CREATE OR REPLACE FUNCTION referee_append_only() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION '% is append-only: insert a superseding decision instead', TG_TABLE_NAME; "
            "END $$ LANGUAGE plpgsql"
        )
    for table in ("decisions", "signals"):
        if pg:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION referee_append_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION referee_append_only()")
        else:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} BEGIN SELECT "
                    f"RAISE(ABORT, '{table} is append-only: insert a superseding decision instead'); END"
                )


# -- items and content ----------------------------------------------------------
def content_hash(surface: str, text: str) -> str:
    """Today's ``ContentItem.content_hash`` of an item made of one text part ``text``/``body``."""
    h = hashlib.sha256(surface.encode())
    for field in (b"text", b"text", b"body", text.encode("utf-8", "surrogatepass")):
        h.update(b"\x00%d:" % len(field))
        h.update(field)
    return h.hexdigest()


def _parts(text: str, media: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if text or not media:
        parts.append({"kind": "text", "id": "text", "role": "body", "text": text, "derived": None})
    for i, ref in enumerate(media):
        uri = str(ref.get("uri", ""))
        source = "url" if uri.startswith(("http://", "https://")) else "path"
        parts.append({"kind": ref.get("kind"), "id": f"media{i}", "role": ref.get("kind"), source: uri})
    return parts


def _pages(bind: sa.Connection, query: sa.Select[Any], key: sa.ColumnElement[Any]) -> Iterator[Sequence[Any]]:
    """Rows in chunks by ascending ``key`` (no cursor held open across the inserts)."""
    last: Any = None
    while True:
        page = query if last is None else query.where(key > last)
        rows = bind.execute(page.order_by(key).limit(CHUNK)).all()
        if not rows:
            return
        yield rows
        last = rows[-1]._mapping[key.name]


def _insert_ignore(bind: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    bind.execute(insert(table).on_conflict_do_nothing(), rows)


def _copy_items(bind: sa.Connection, items_old: sa.Table, new: sa.MetaData) -> dict[tuple[str, str], str]:
    """Move the items' text into ``content``; returns (item id, old hash) -> new hash."""
    hashes: dict[tuple[str, str], str] = {}
    query = sa.select(items_old.c.pk, items_old.c.item_id, items_old.c.content_hash, items_old.c.surface,
                      items_old.c.text, items_old.c.author_id, items_old.c.country, items_old.c.language,
                      items_old.c.item_created_at, items_old.c.first_seen_at,
                      sa.cast(items_old.c.meta, sa.Text).label("meta"))
    for rows in _pages(bind, query, items_old.c.pk):
        contents: dict[str, dict[str, Any]] = {}
        item_rows = []
        for r in rows:
            meta = json.loads(r.meta) if r.meta else {}
            media = list(meta.get("media") or [])
            new_hash = content_hash(r.surface, r.text) if r.text and not media else r.content_hash
            hashes[(r.item_id, r.content_hash)] = new_hash
            contents.setdefault(new_hash, {"content_hash": new_hash, "parts": _parts(r.text, media),
                                           "stored_at": r.first_seen_at, "erased_at": None})
            item_rows.append({"item_id": r.item_id, "content_hash": new_hash, "surface": r.surface,
                              "author_id": r.author_id, "country": r.country, "language": r.language,
                              "created_at": r.item_created_at, "context": meta.get("context") or {},
                              "first_seen_at": r.first_seen_at})
        _insert_ignore(bind, new.tables["content"], list(contents.values()))
        _insert_ignore(bind, new.tables["items"], item_rows)
    return hashes


# -- decisions --------------------------------------------------------------------
def _copy_decisions(bind: sa.Connection, old: sa.Table, new: sa.MetaData, hashes: dict[tuple[str, str], str]) -> None:
    order: list[sa.ColumnElement[Any]] = [sa.literal_column("rowid")] if bind.dialect.name == "sqlite" else []
    rows = bind.execute(
        sa.select(old.c.decision_id, old.c.item_id, old.c.content_hash, old.c.supersedes)
        .order_by(old.c.created_at, *order, old.c.decision_id)
    ).all()
    # Parents before children (a record may carry an earlier created_at than the one it supersedes).
    by_id = {r.decision_id: r for r in rows}
    emitted: set[str] = set()
    ordered = []
    for r in rows:
        climb = []
        node: Any = r
        while node is not None and node.decision_id not in emitted:
            climb.append(node)
            node = by_id.get(node.supersedes) if node.supersedes else None
        for node in reversed(climb):
            emitted.add(node.decision_id)
            ordered.append(node)
    # One chain per item: each record supersedes the item's record before it.
    head: dict[str, str] = {}
    plan = []
    for seq, r in enumerate(ordered, start=1):
        plan.append({"seq": seq, "decision_id": r.decision_id, "supersedes": head.get(r.item_id),
                     "content_hash": hashes.get((r.item_id, r.content_hash), r.content_hash)})
        head[r.item_id] = r.decision_id
    mapping = new.tables["migrate_0002_map"]
    for start in range(0, len(plan), CHUNK):
        bind.execute(sa.insert(mapping), plan[start : start + CHUNK])

    known = set(hashes.items())
    known_items = {(item_id, new_hash) for (item_id, _), new_hash in known}
    query = (
        sa.select(mapping.c.seq, mapping.c.supersedes, mapping.c.content_hash, old.c.decision_id, old.c.item_id,
                  old.c.created_at, sa.cast(old.c.payload, sa.Text).label("payload"))
        .join(old, old.c.decision_id == mapping.c.decision_id)
    )
    for page in _pages(bind, query, mapping.c.seq):
        out = []
        for r in page:
            payload = _payload(json.loads(r.payload), r.decision_id, r.supersedes, r.content_hash)
            if (r.item_id, r.content_hash) not in known_items:
                # A record about content the old store never kept (a verdict written with another
                # hash): the content is unknown, like erased content, and the item is what the record says.
                _insert_ignore(bind, new.tables["content"], [{"content_hash": r.content_hash, "parts": None,
                                                               "stored_at": r.created_at, "erased_at": None}])
                _insert_ignore(bind, new.tables["items"], [{
                    "item_id": r.item_id, "content_hash": r.content_hash, "surface": payload["surface"],
                    "author_id": None, "country": payload.get("country"), "language": None, "created_at": None,
                    "context": {}, "first_seen_at": r.created_at}])
                known_items.add((r.item_id, r.content_hash))
            out.append({
                "decision_id": r.decision_id, "seq": r.seq, "item_id": r.item_id, "content_hash": r.content_hash,
                "input_key": payload["input_key"], "supersedes": r.supersedes, "source": payload["source"],
                "action": payload["action"], "strike": bool(payload.get("strike")),
                "review_required": bool(payload.get("review_required")), "provisional": payload["provisional"],
                "policy_id": payload["policy_id"], "policy_version": payload["policy_version"],
                "policy_sha256": payload["policy_sha256"], "created_at": r.created_at, "recorded_at": r.created_at,
                "payload": payload,
            })
        bind.execute(sa.insert(new.tables["decisions"]), out)


def _payload(p: dict[str, Any], decision_id: str, supersedes: str | None, content_hash: str) -> dict[str, Any]:
    """An old release's Decision as today's."""
    p = dict(p)
    p.setdefault("input_key", decision_id)
    p.setdefault("policy_sha256", "unknown")
    p.setdefault("provisional", bool(p.get("failures")))
    p.setdefault("source", "automated")
    p["supersedes"] = supersedes
    p["content_hash"] = content_hash
    signals = []
    for s in p.get("signals") or []:
        s = dict(s)
        evidence = []
        for e in s.get("evidence") or []:
            e = {k: v for k, v in e.items() if k != "text"}
            if e.get("start") is not None and e.get("part_id") is None:
                e["part_id"] = "text"  # old spans were offsets into the item's one text
            evidence.append(e)
        s["evidence"] = evidence
        signals.append(s)
    p["signals"] = signals
    return p
