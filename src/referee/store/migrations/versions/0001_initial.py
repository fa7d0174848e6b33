"""Initial schema: items, decisions (append-only), signals, api_keys.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.String(256), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("surface", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("author_id", sa.String(256)),
        sa.Column("country", sa.String(2)),
        sa.Column("language", sa.String(35)),
        sa.Column("item_created_at", sa.DateTime(timezone=True)),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.UniqueConstraint("item_id", "content_hash", name="uq_items_item_hash"),
    )
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(64), primary_key=True),
        sa.Column("item_id", sa.String(256), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("strike", sa.Boolean, nullable=False),
        sa.Column("review_required", sa.Boolean, nullable=False),
        sa.Column("policy_id", sa.String(128), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("supersedes", sa.String(64), sa.ForeignKey("decisions.decision_id")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
    )
    op.create_index("ix_decisions_item", "decisions", ["item_id"])
    op.create_index("ix_decisions_created", "decisions", ["created_at"])
    op.create_table(
        "signals",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("decision_id", sa.String(64), sa.ForeignKey("decisions.decision_id"), nullable=False),
        sa.Column("detector", sa.String(64), nullable=False),
        sa.Column("detector_version", sa.String(128), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
    )
    op.create_index("ix_signals_decision", "signals", ["decision_id"])
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("scopes", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    # Append-only, enforced by the database itself.
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(
            "CREATE TRIGGER decisions_append_only BEFORE UPDATE ON decisions "
            "BEGIN SELECT RAISE(ABORT, 'decisions are append-only: insert a superseding decision'); END"
        )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION referee_append_only() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'decisions are append-only: insert a superseding decision'; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER decisions_append_only BEFORE UPDATE ON decisions "
            "FOR EACH ROW EXECUTE FUNCTION referee_append_only()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP TRIGGER IF EXISTS decisions_append_only" + (" ON decisions" if dialect == "postgresql" else ""))
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS referee_append_only()")
    for table in ("api_keys", "signals", "decisions", "items"):
        op.drop_table(table)
