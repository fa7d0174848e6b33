"""The decision store's tables (SQLAlchemy 2 Core).

Decisions are append-only: a review or appeal inserts a new row whose
``supersedes`` names the old one. The migration adds a trigger that refuses
UPDATE on ``decisions``, so the rule holds even for code that bypasses the
repository. The whole Decision is kept as JSON in ``payload`` so the record
is self-describing; the columns beside it exist for querying.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

items = Table(
    "items",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("item_id", String(256), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("surface", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Column("author_id", String(256)),
    Column("country", String(2)),
    Column("language", String(35)),
    Column("item_created_at", DateTime(timezone=True)),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("meta", JSON, nullable=False, default=dict),
    UniqueConstraint("item_id", "content_hash", name="uq_items_item_hash"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", String(64), primary_key=True),
    Column("item_id", String(256), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("strike", Boolean, nullable=False),
    Column("review_required", Boolean, nullable=False),
    Column("policy_id", String(128), nullable=False),
    Column("policy_version", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    Column("supersedes", String(64), ForeignKey("decisions.decision_id")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("payload", JSON, nullable=False),
    Index("ix_decisions_item", "item_id"),
    Index("ix_decisions_created", "created_at"),
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
    Index("ix_signals_decision", "decision_id"),
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
