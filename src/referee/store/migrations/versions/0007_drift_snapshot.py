"""The latest drift report's gauges, computed by one log follower and read by every serving process.

Revision ID: 0007
Revises: 0006

The table is defined here as it is at this revision, not imported from
``referee.store.sql.shadow_tables``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_snapshot",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gauges", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drift_snapshot"),
    )


def downgrade() -> None:
    op.drop_table("drift_snapshot")
