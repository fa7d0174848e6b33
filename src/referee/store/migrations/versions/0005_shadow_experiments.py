"""Shadow mode and experiments: a candidate's shadow decisions, exposures, experiment configs.

Revision ID: 0005
Revises: 0004

The tables are defined here as they are at this revision, not imported from
``referee.store.sql.shadow_tables``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shadow_decisions",
        sa.Column("shadow_id", sa.String(64), nullable=False),
        sa.Column("candidate_id", sa.String(128), nullable=False),
        sa.Column("item_id", sa.String(256), nullable=False),
        sa.Column("champion_decision_id", sa.String(64), nullable=False),
        sa.Column("champion_action", sa.String(32), nullable=False),
        sa.Column("decision", sa.JSON, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("categories", sa.JSON, nullable=False),
        sa.Column("surface", sa.String(64), nullable=False),
        sa.Column("country", sa.String(2)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shadow_id", name="pk_shadow_decisions"),
    )
    op.create_index("ix_shadow_decisions_candidate_id_created_at", "shadow_decisions",
                    ["candidate_id", "created_at"])
    op.create_table(
        "experiment_exposures",
        sa.Column("experiment", sa.String(128), nullable=False),
        sa.Column("unit", sa.String(256), nullable=False),
        sa.Column("item_id", sa.String(256), nullable=False),
        sa.Column("arm", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("experiment", "unit", "item_id", name="pk_experiment_exposures"),
    )
    op.create_index("ix_experiment_exposures_experiment_arm", "experiment_exposures", ["experiment", "arm"])
    op.create_table(
        "experiments",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_experiments"),
    )


def downgrade() -> None:
    op.drop_table("experiments")
    op.drop_table("experiment_exposures")
    op.drop_table("shadow_decisions")
