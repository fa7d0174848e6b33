"""Tables of human review and appeals (queues, leases, verdict metadata).

Registered on the store's one ``metadata``, so the migrations and the tables are
compared as a whole (tests/store/test_migrations.py). Created by migration 0004.

- ``review_tasks``: one row per piece of review work (an item's decision to review,
  a QA double review, an appeal). Operational state, so updated in place: ``status``
  (open, claimed, done, stale), the lease (``claimed_by``, ``lease_until``).
  Times used for ordering are epoch seconds (floats), so one ``ORDER BY`` works on
  both dialects. ``rank`` is the priority's time-free part folded with the
  deadline term (see ``referee.records.review``). ``(decision_id, kind, slot)`` is
  unique: enqueueing twice is a no-op.
- ``review_verdicts``: what a reviewer said about a task (append-only by use:
  referee only inserts). The verdict's own decision, when it made one, is in the
  decision log (``new_decision_id``).
- ``reviewers``: console accounts, scrypt password hashes, granted queues.
- ``appeals``: DSA Art. 20 complaints against a decision and their outcome.
- ``review_state``: one row, how far ``sync`` has read the decision log.
- ``console_sessions``: reviewer console logins (the cookie's token, hashed) and their CSRF token.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, Index, Integer, String, Table, Text, UniqueConstraint

from referee.store.sql.tables import metadata

review_tasks = Table(
    "review_tasks",
    metadata,
    Column("task_id", String(64), primary_key=True),
    Column("queue", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # review | qa | appeal | senior
    Column("slot", Integer, nullable=False),
    Column("item_id", String(256), nullable=False),
    Column("decision_id", String(64), nullable=False),
    Column("category", String(64)),
    Column("severity", String(16)),
    Column("priority", Float, nullable=False),
    Column("rank", Float, nullable=False),
    Column("enqueued_at", Float, nullable=False),
    Column("due_at", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("claimed_by", String(128)),
    Column("claimed_at", Float),
    Column("lease_until", Float),
    Column("exclude_reviewer", String(128)),
    Column("appeal_id", String(64)),
    Column("completed_at", Float),
    UniqueConstraint("decision_id", "kind", "slot"),
    Index(None, "queue", "status", "rank"),
    Index(None, "queue", "status", "due_at"),
)

review_verdicts = Table(
    "review_verdicts",
    metadata,
    Column("verdict_id", String(64), primary_key=True),
    Column("task_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("item_id", String(256), nullable=False),
    Column("decision_id", String(64), nullable=False),  # the decision reviewed
    Column("reviewer_id", String(128), nullable=False),
    Column("verdict", String(32), nullable=False),  # uphold | overturn | change | escalate
    Column("action", String(32)),
    Column("categories", JSON, nullable=False),
    Column("new_decision_id", String(64)),
    Column("seconds_spent", Float, nullable=False),
    Column("notes", Text, nullable=False),
    Column("recorded_at", Float, nullable=False),
    Index(None, "decision_id"),
    Index(None, "new_decision_id"),
    Index(None, "recorded_at"),
)

reviewers = Table(
    "reviewers",
    metadata,
    Column("reviewer_id", String(128), primary_key=True),
    Column("password_hash", String(256), nullable=False),
    Column("queues", JSON, nullable=False),
    Column("senior", Boolean, nullable=False),
    Column("blur_images", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
)

appeals = Table(
    "appeals",
    metadata,
    Column("appeal_id", String(64), primary_key=True),
    Column("item_id", String(256), nullable=False),
    Column("decision_id", String(64), nullable=False),  # the decision appealed against
    Column("reason", Text, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("status", String(16), nullable=False),  # open | upheld | overturned
    Column("original_reviewer", String(128)),
    Column("outcome_decision_id", String(64)),
    Column("reversed_action", String(32)),
    Column("decided_by", String(128)),
    Column("decided_at", Float),
    Index(None, "decision_id"),
)

review_state = Table(
    "review_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_seq", Integer, nullable=False),  # the last log record ``sync`` looked at
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # sha256 of the cookie's random token
    Column("reviewer_id", String(128), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

__all__ = ["appeals", "console_sessions", "review_state", "review_tasks", "review_verdicts", "reviewers"]
