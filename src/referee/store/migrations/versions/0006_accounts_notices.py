"""Account actions (the platform's outbox of strikes reaching thresholds) and DSA Art. 16 notices.

Revision ID: 0006
Revises: 0005

The tables are defined here as they are at this revision, not imported from
``referee.store.sql.account_tables``. ``account_actions`` is append-only: a
reversal is a new record, so triggers refuse UPDATE and DELETE (and TRUNCATE on
PostgreSQL).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MESSAGE = "is append-only: record a new account action (lower or lift) instead"


def upgrade() -> None:
    seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "account_actions",
        sa.Column("seq", seq, autoincrement=True, nullable=False),
        sa.Column("action_id", sa.String(64), nullable=False),
        sa.Column("author_id", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("action", sa.String(64)),
        sa.Column("replaces", sa.String(64)),
        sa.Column("points", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("decision_ids", sa.JSON, nullable=False),
        sa.Column("trigger_decision_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("seq", name="pk_account_actions"),
        sa.UniqueConstraint("action_id", name="uq_account_actions_action_id"),
    )
    op.create_index("ix_account_actions_author_id_seq", "account_actions", ["author_id", "seq"])
    op.create_table(
        "account_state",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_account_state"),
    )
    op.create_table(
        "notices",
        sa.Column("notice_id", sa.String(64), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("item_id", sa.String(256)),
        sa.Column("url", sa.Text),
        sa.Column("category", sa.String(64)),
        sa.Column("explanation", sa.Text, nullable=False),
        sa.Column("notifier_contact", sa.Text),
        sa.Column("trusted_flagger", sa.Boolean, nullable=False),
        sa.Column("key_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decision_id", sa.String(64)),
        sa.Column("task_id", sa.String(64)),
        sa.Column("outcome", sa.String(32)),
        sa.Column("outcome_action", sa.String(32)),
        sa.Column("outcome_decision_id", sa.String(64)),
        sa.Column("decided_at", sa.Float),
        sa.Column("communicated_at", sa.Float),
        sa.PrimaryKeyConstraint("notice_id", name="pk_notices"),
    )
    op.create_index("ix_notices_item_id", "notices", ["item_id"])
    op.create_index("ix_notices_status", "notices", ["status"])
    op.create_index("ix_notices_received_at", "notices", ["received_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION referee_account_append_only() RETURNS trigger AS $$ BEGIN "
            f"RAISE EXCEPTION '% {MESSAGE}', TG_TABLE_NAME; END $$ LANGUAGE plpgsql"
        )
        op.execute("CREATE TRIGGER account_actions_append_only BEFORE UPDATE OR DELETE ON account_actions "
                   "FOR EACH ROW EXECUTE FUNCTION referee_account_append_only()")
        op.execute("CREATE TRIGGER account_actions_no_truncate BEFORE TRUNCATE ON account_actions "
                   "FOR EACH STATEMENT EXECUTE FUNCTION referee_account_append_only()")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER account_actions_no_{verb.lower()} BEFORE {verb} ON account_actions "
                       f"BEGIN SELECT RAISE(ABORT, 'account_actions {MESSAGE}'); END")


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.execute("DROP TRIGGER IF EXISTS account_actions_append_only ON account_actions")
        op.execute("DROP TRIGGER IF EXISTS account_actions_no_truncate ON account_actions")
        op.execute("DROP FUNCTION IF EXISTS referee_account_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS account_actions_no_update")
        op.execute("DROP TRIGGER IF EXISTS account_actions_no_delete")
    op.drop_table("notices")
    op.drop_table("account_state")
    op.drop_table("account_actions")
