"""Human review and appeals: queues, leases, verdict metadata.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_tasks",
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("slot", sa.Integer, nullable=False),
        sa.Column("item_id", sa.String(256), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("category", sa.String(64)),
        sa.Column("severity", sa.String(16)),
        sa.Column("priority", sa.Float, nullable=False),
        sa.Column("rank", sa.Float, nullable=False),
        sa.Column("enqueued_at", sa.Float, nullable=False),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(128)),
        sa.Column("claimed_at", sa.Float),
        sa.Column("lease_until", sa.Float),
        sa.Column("exclude_reviewer", sa.String(128)),
        sa.Column("appeal_id", sa.String(64)),
        sa.Column("completed_at", sa.Float),
        sa.PrimaryKeyConstraint("task_id", name="pk_review_tasks"),
        sa.UniqueConstraint("decision_id", "kind", "slot", name="uq_review_tasks_decision_id_kind_slot"),
    )
    op.create_index("ix_review_tasks_queue_status_rank", "review_tasks", ["queue", "status", "rank"])
    op.create_index("ix_review_tasks_queue_status_due_at", "review_tasks", ["queue", "status", "due_at"])
    op.create_table(
        "review_verdicts",
        sa.Column("verdict_id", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("item_id", sa.String(256), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("reviewer_id", sa.String(128), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32)),
        sa.Column("categories", sa.JSON, nullable=False),
        sa.Column("new_decision_id", sa.String(64)),
        sa.Column("seconds_spent", sa.Float, nullable=False),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("verdict_id", name="pk_review_verdicts"),
    )
    op.create_index("ix_review_verdicts_decision_id", "review_verdicts", ["decision_id"])
    op.create_index("ix_review_verdicts_new_decision_id", "review_verdicts", ["new_decision_id"])
    op.create_index("ix_review_verdicts_recorded_at", "review_verdicts", ["recorded_at"])
    op.create_table(
        "reviewers",
        sa.Column("reviewer_id", sa.String(128), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("queues", sa.JSON, nullable=False),
        sa.Column("senior", sa.Boolean, nullable=False),
        sa.Column("blur_images", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("reviewer_id", name="pk_reviewers"),
    )
    op.create_table(
        "appeals",
        sa.Column("appeal_id", sa.String(64), nullable=False),
        sa.Column("item_id", sa.String(256), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("original_reviewer", sa.String(128)),
        sa.Column("outcome_decision_id", sa.String(64)),
        sa.Column("reversed_action", sa.String(32)),
        sa.Column("decided_by", sa.String(128)),
        sa.Column("decided_at", sa.Float),
        sa.PrimaryKeyConstraint("appeal_id", name="pk_appeals"),
    )
    op.create_index("ix_appeals_decision_id", "appeals", ["decision_id"])
    op.create_table(
        "review_state",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_review_state"),
    )
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("reviewer_id", sa.String(128), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_console_sessions"),
    )


def downgrade() -> None:
    op.drop_table("console_sessions")
    op.drop_table("review_state")
    op.drop_table("appeals")
    op.drop_table("reviewers")
    op.drop_table("review_verdicts")
    op.drop_table("review_tasks")
