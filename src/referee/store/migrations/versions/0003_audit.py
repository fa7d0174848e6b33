"""The compliance pipeline's tables (tamper-evident chain, statements of reasons).

Revision ID: 0003
Revises: 0002

- ``audit_chain``: a link per sealed decision record (seq, decision id, previous
  hash, hash); append-only.
- ``audit_checkpoints``: head hashes at seqs (HMAC-signed when sealed with a key); append-only.
- ``sor_submissions``: the submission state of each statement of reasons by puid.

Triggers refuse UPDATE and DELETE on the two chain tables (and TRUNCATE on
PostgreSQL), as 0002 does for ``decisions``. The tables are defined here as they
are at this revision, not imported from ``referee.store.sql.audit_tables``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY = ("audit_chain", "audit_checkpoints")
MESSAGE = "is append-only: the audit chain is only ever extended"


def upgrade() -> None:
    op.create_table(
        "audit_chain",
        sa.Column("seq", SEQ, autoincrement=False, nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("record_hash", sa.String(64), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_chain"),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", SEQ, autoincrement=False, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signature", sa.String(64)),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_checkpoints"),
    )
    op.create_table(
        "sor_submissions",
        sa.Column("puid", sa.String(128), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("seq", SEQ, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("detail", sa.String(1000)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("puid", name="pk_sor_submissions"),
    )
    op.create_index("ix_sor_submissions_status", "sor_submissions", ["status"])
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.execute(
            "CREATE OR REPLACE FUNCTION referee_audit_append_only() RETURNS trigger AS $$ BEGIN "
            f"RAISE EXCEPTION '% {MESSAGE}', TG_TABLE_NAME; END $$ LANGUAGE plpgsql"
        )
    for table in APPEND_ONLY:
        if pg:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION referee_audit_append_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION referee_audit_append_only()")
        else:
            for verb in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} BEGIN SELECT "
                           f"RAISE(ABORT, '{table} {MESSAGE}'); END")


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for table in APPEND_ONLY:
        if pg:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        else:
            for verb in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
    if pg:
        op.execute("DROP FUNCTION IF EXISTS referee_audit_append_only()")
    op.drop_index("ix_sor_submissions_status", "sor_submissions")
    for table in ("sor_submissions", "audit_checkpoints", "audit_chain"):
        op.drop_table(table)
