"""Tables of the compliance pipeline (the tamper-evident chain, statements of reasons).

Registered on the store's one ``metadata``, so the migrations and the tables are
compared as a whole (tests/store/test_migrations.py). Created by migration 0003.

- ``audit_chain``: one link per sealed decision record, keyed by the record's
  ``seq``: the decision it sealed, the previous link's hash and this link's hash
  (sha256 over the previous hash, the seq and the record's bytes, in the link's
  ``format``: see referee.records.chain; the record names the content by hash and never
  holds it). Append-only (triggers).
  No foreign key to ``decisions``: the chain must outlive a deleted record to
  report it.
- ``audit_checkpoints``: the head hash at a seq, written by ``seal`` every so many
  links and at its end, signed (HMAC-SHA256) when sealed with a key; publish them (or
  compare with ``verify --expect-head``) and a rewritten chain shows. Append-only (triggers).
- ``sor_submissions``: the submission state of each statement of reasons, by
  puid (one statement per restricting decision): ``pending``, ``submitted``
  (201), ``duplicate`` (422 for an existing puid: it was submitted before),
  ``failed`` (the server refused it otherwise; kept with the reason). Updated as
  submissions go, so this one is not append-only.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, SmallInteger, String, Table

from referee.store.sql.tables import SEQ, metadata

audit_chain = Table(
    "audit_chain",
    metadata,
    Column("seq", SEQ, primary_key=True, autoincrement=False),
    Column("decision_id", String(64), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("record_hash", String(64), nullable=False),
    Column("sealed_at", DateTime(timezone=True), nullable=False),
    # The bytes the link hashed: 1 the record's canonical JSON, 2 its payload as stored (migration 0008).
    Column("format", SmallInteger, nullable=False, server_default="1"),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", SEQ, primary_key=True, autoincrement=False),
    Column("head_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("signature", String(64)),  # HMAC-SHA256 of "seq:head_hash" when sealed with a key
)

sor_submissions = Table(
    "sor_submissions",
    metadata,
    Column("puid", String(128), primary_key=True),
    Column("decision_id", String(64), nullable=False),
    Column("seq", SEQ, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("http_status", Integer),
    Column("detail", String(1000)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "status"),
)

#: The audit tables the database keeps append-only, and the message of their triggers.
AUDIT_APPEND_ONLY = ("audit_chain", "audit_checkpoints")
AUDIT_APPEND_ONLY_MESSAGE = "is append-only: the audit chain is only ever extended"

__all__ = ["AUDIT_APPEND_ONLY", "AUDIT_APPEND_ONLY_MESSAGE", "audit_chain", "audit_checkpoints", "sor_submissions"]
