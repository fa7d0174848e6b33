"""Each audit-chain link names the format of the bytes it hashed.

Revision ID: 0008
Revises: 0007

Links sealed before this revision hashed the record's canonical JSON (format 1) and keep
it: the column's default marks them so. ``seal`` writes format 2 from now on, which hashes
the record's payload as stored instead of re-encoding it (referee.records.chain).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN with a constant default: SQLite and PostgreSQL add it without rewriting the
    # table or firing its append-only triggers.
    op.add_column("audit_chain", sa.Column("format", sa.SmallInteger, nullable=False, server_default="1"))


def downgrade() -> None:
    # Format-2 links cannot be read by code that knows only format 1: refuse instead of leaving
    # a chain that older code would report as edited everywhere.
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT count(*) FROM audit_chain WHERE format <> 1")).scalar():
        raise RuntimeError("audit_chain holds format-2 links, which revision 0007 cannot verify; "
                           "keep revision 0008 (downgrade refused)")
    op.execute("ALTER TABLE audit_chain DROP COLUMN format")  # SQLite >= 3.35 and PostgreSQL; keeps the triggers
