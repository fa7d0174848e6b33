"""The store's tables (SQLAlchemy 2 Core), one schema for SQLite and PostgreSQL.

- ``content``: what users posted, by content hash (the item's parts as JSON).
  Retention and erasure empty ``parts``; the row stays as a tombstone, so the
  decisions that name the hash still point at something.
- ``items``: one row per item id and content hash (an edited item is a new
  row), with the item's metadata; references ``content``.
- ``decisions``: the decision log. Append-only (triggers refuse UPDATE and
  DELETE; see the migrations). Each record has a store-assigned, gap-free
  ``seq``. ``supersedes`` is unique, so a decision is superseded at most
  once, and an item has at most one root (the partial unique index on
  ``item_id`` where ``supersedes`` is null): an item's decisions form one
  chain, whose last link is its *head*. ``supersedes`` points into the same
  item (the log checks it before it writes; a BEFORE INSERT trigger doing so cost
  SQLite 8 µs a row, measured). The whole Decision is kept as JSON in
  ``payload``; the columns beside it exist for querying.
- ``signals``: one row per signal of a decision, for analytics. Append-only too.
- ``decision_seq``: one row, the last ``seq`` handed out. Incremented inside
  each append transaction, so a rolled-back append hands out nothing (a
  database sequence would leave gaps).
- ``api_keys``: hashed API keys and their scopes.

The migrations under ``referee/store/migrations`` create exactly these tables;
``tests/store/test_migrations.py`` compares them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

#: Constraint and index names are spelled out, so both dialects and every migration agree on them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

#: A 64-bit sequence number; on SQLite plain INTEGER, which makes a primary key the rowid.
SEQ = BigInteger().with_variant(Integer(), "sqlite")

content = Table(
    "content",
    metadata,
    Column("content_hash", String(64), primary_key=True),
    Column("parts", JSON(none_as_null=True)),  # SQL NULL once erased
    Column("stored_at", DateTime(timezone=True), nullable=False),
    Column("erased_at", DateTime(timezone=True)),
)

items = Table(
    "items",
    metadata,
    Column("item_id", String(256), primary_key=True),
    Column("content_hash", String(64), ForeignKey("content.content_hash"), primary_key=True),
    Column("surface", String(64), nullable=False),
    Column("author_id", String(256)),
    Column("country", String(2)),
    Column("language", String(35)),
    Column("created_at", DateTime(timezone=True)),
    Column("context", JSON, nullable=False),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
)

decisions = Table(
    "decisions",
    metadata,
    # seq is the key: on SQLite the rowid itself (INTEGER PRIMARY KEY), so the table is
    # stored in log order and the sequence needs no index of its own.
    Column("seq", SEQ, primary_key=True, autoincrement=False),
    Column("decision_id", String(64), nullable=False),
    Column("item_id", String(256), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("input_key", String(64), nullable=False),
    Column("supersedes", String(64)),
    Column("source", String(16), nullable=False),
    Column("action", String(32), nullable=False),
    Column("strike", Boolean, nullable=False),
    Column("review_required", Boolean, nullable=False),
    Column("provisional", Boolean, nullable=False),
    Column("policy_id", String(128), nullable=False),
    Column("policy_version", String(64), nullable=False),
    Column("policy_sha256", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("payload", JSON, nullable=False),
    UniqueConstraint("decision_id"),
    # A decision supersedes a stored one (of the same item: the log checks that).
    ForeignKeyConstraint(["supersedes"], ["decisions.decision_id"], name="fk_decisions_supersedes_decisions"),
    ForeignKeyConstraint(["item_id", "content_hash"], ["items.item_id", "items.content_hash"],
                         name="fk_decisions_content_items"),
    # One root per item: every later decision about it supersedes one before. With the
    # unique supersedes this is also how an item's chain is found (root, then successors).
    Index("uq_decisions_root", "item_id", unique=True,
          sqlite_where=text("supersedes IS NULL"), postgresql_where=text("supersedes IS NULL")),
    # A decision is superseded at most once: nothing forks. Partial, so roots (most records)
    # cost it nothing, and a lookup of roots cannot mistake it for the root index.
    Index("uq_decisions_supersedes", "supersedes", unique=True,
          sqlite_where=text("supersedes IS NOT NULL"), postgresql_where=text("supersedes IS NOT NULL")),
    Index(None, "created_at"),
)

signals = Table(
    "signals",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("decision_id", String(64), ForeignKey("decisions.decision_id"), nullable=False),
    Column("detector", String(64), nullable=False),
    Column("detector_version", String(128), nullable=False),
    Column("category", String(64), nullable=False),
    Column("score", Float, nullable=False),
    Index(None, "decision_id"),
)

decision_seq = Table(
    "decision_seq",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_seq", SEQ, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("secret_hash", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("scopes", String(256), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

#: The tables the database itself keeps append-only, and the message its triggers give.
APPEND_ONLY = ("decisions", "signals")
APPEND_ONLY_MESSAGE = "is append-only: insert a superseding decision instead"

__all__ = ["APPEND_ONLY", "APPEND_ONLY_MESSAGE", "NAMING", "api_keys", "content", "decision_seq", "decisions",
           "items", "metadata", "signals"]

# The capability tables declare themselves on ``metadata``; importing them here
# makes every user of ``metadata`` (migrations, their comparison test) see them.
from referee.store.sql import account_tables, audit_tables, review_tables, shadow_tables  # noqa: E402,F401
