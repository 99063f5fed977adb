"""Inspectors' spot checks, shown next to the risk queue's center-weeks.

Revision ID: 0007_spotchecks
Revises: 0004_rate_buckets
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_spotchecks"
down_revision = "0006_import_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spotchecks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("center_id", sa.String(length=64), nullable=False),
        sa.Column("date", sa.String(length=10), nullable=False),
        sa.Column("present", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("by", sa.Text(), nullable=False),
        sa.Column("recorded_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spotchecks")),
    )
    op.create_index("ix_spotchecks_center_date", "spotchecks", ["center_id", "date"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_spotchecks_center_date", table_name="spotchecks")
    op.drop_table("spotchecks")
