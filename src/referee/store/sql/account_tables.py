"""Tables of account actions (strikes reaching a threshold) and DSA Art. 16 notices.

Registered on the store's one ``metadata`` (compared with the migrations as a whole,
tests/store/test_migrations.py). Created by migration 0006.

- ``account_actions``: every account action referee emitted for an author, in the
  order it emitted them (``seq``): the platform's outbox, read with a cursor. A record
  is never updated: an appeal that takes a strike back is a new record (``kind``
  ``lower`` or ``lift``) that replaces the one before (``replaces``); triggers refuse
  UPDATE and DELETE. ``action`` is the account action in force after the record (None
  after a lift); ``decision_ids`` the strike decisions counted, ``trigger_decision_id``
  the log record whose arrival made referee recompute the standing.
- ``account_state``: one row, how far the account sync has read the decision log.
- ``notices``: notices of illegal content (DSA Art. 16; trusted flaggers, Art. 22),
  their routing to review and their outcome. Operational state, updated in place like
  the appeals: ``status`` (unrouted, open, decided), the outcome and when the notifier
  was told (``communicated_at``). ``notifier_contact`` is personal data: it is kept
  for telling the notifier the outcome and never leaves referee in a statement of
  reasons or a report. Times are epoch seconds, as in the review tables.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, Float, Index, Integer, String, Table, Text

from referee.store.sql.tables import SEQ, metadata

account_actions = Table(
    "account_actions",
    metadata,
    Column("seq", SEQ, primary_key=True, autoincrement=True),
    Column("action_id", String(64), nullable=False, unique=True),
    Column("author_id", String(256), nullable=False),
    Column("kind", String(16), nullable=False),  # impose | lower | lift
    Column("action", String(64)),  # in force after this record; None after a lift
    Column("replaces", String(64)),  # the action_id this record takes the place of
    Column("points", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("decision_ids", JSON, nullable=False),
    Column("trigger_decision_id", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Index(None, "author_id", "seq"),
)

account_state = Table(
    "account_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_seq", Integer, nullable=False),
)

notices = Table(
    "notices",
    metadata,
    Column("notice_id", String(64), primary_key=True),
    Column("received_at", Float, nullable=False),
    Column("item_id", String(256)),
    Column("url", Text),
    Column("category", String(64)),
    Column("explanation", Text, nullable=False),
    Column("notifier_contact", Text),
    Column("trusted_flagger", Boolean, nullable=False),
    Column("key_id", String(64)),
    Column("status", String(16), nullable=False),  # unrouted | open | decided
    Column("decision_id", String(64)),  # the item's decision when the notice was routed
    Column("task_id", String(64)),
    Column("outcome", String(32)),  # the reviewer's verdict
    Column("outcome_action", String(32)),
    Column("outcome_decision_id", String(64)),
    Column("decided_at", Float),
    Column("communicated_at", Float),
    Index(None, "item_id"),
    Index(None, "status"),
    Index(None, "received_at"),
)

__all__ = ["account_actions", "account_state", "notices"]
