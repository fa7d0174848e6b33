"""Tables of shadow mode and experiments: what a candidate would have done, and who saw which arm.

Registered on the store's one ``metadata``, so the migrations and the tables are
compared as a whole (tests/store/test_migrations.py). Created by migration 0005.

- ``shadow_decisions``: one row per item a shadow candidate decided beside the
  champion. Kept apart from ``decisions`` on purpose: nothing that enforces,
  queues for review, seals into the audit chain or exports statements of reasons
  reads this table, so a candidate's decision can never act on anybody. The
  candidate's whole Decision is ``decision`` (JSON); ``action``, ``categories``,
  ``surface`` and ``country`` are copied out for the report's group-bys, and the
  champion's action beside it so agreement needs no join into the log.
  The key is a hash of ``(candidate_id, champion_decision_id)``: observing one
  champion decision twice (a re-moderation answered from the head) records it once.
- ``experiment_exposures``: one row per unit, experiment and item decided: the
  arm the unit was assigned to and the decision that arm's engine made (in the
  decision log: an experiment's arms are enforced, unlike a shadow).
- ``experiments``: each experiment's configuration as it ran (its arms and
  shares, for the sample-ratio check and the report), by name.
- ``drift_snapshot``: one row, the latest drift report's gauges, written by the one log
  follower that computes them and read by every serving process for its ``/metrics``
  (migration 0007).
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Index, Integer, String, Table

from referee.store.sql.tables import metadata

shadow_decisions = Table(
    "shadow_decisions",
    metadata,
    Column("shadow_id", String(64), primary_key=True),  # sha256(candidate id, champion decision id)
    Column("candidate_id", String(128), nullable=False),
    Column("item_id", String(256), nullable=False),
    Column("champion_decision_id", String(64), nullable=False),
    Column("champion_action", String(32), nullable=False),
    Column("decision", JSON, nullable=False),  # the candidate's Decision, never enforced
    Column("action", String(32), nullable=False),
    Column("categories", JSON, nullable=False),
    Column("surface", String(64), nullable=False),
    Column("country", String(2)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "candidate_id", "created_at"),
)

experiment_exposures = Table(
    "experiment_exposures",
    metadata,
    Column("experiment", String(128), primary_key=True),
    Column("unit", String(256), primary_key=True),
    Column("item_id", String(256), primary_key=True),
    Column("arm", String(64), nullable=False),
    Column("decision_id", String(64), nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Index(None, "experiment", "arm"),
)

experiments = Table(
    "experiments",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("config", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

__all__ = ["experiment_exposures", "experiments", "shadow_decisions"]

drift_snapshot = Table(
    "drift_snapshot",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("computed_at", DateTime(timezone=True), nullable=False),
    Column("gauges", JSON, nullable=False),  # [{"name", "labels", "value"}, ...]
)
