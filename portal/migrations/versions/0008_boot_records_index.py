"""A partial index on each device's boot records (the reconciliation reads the latest one
before a period, however old).

Revision ID: 0008_boot_records_index
Revises: 0004_rate_buckets
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_boot_records_index"
down_revision = "0007_spotchecks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_records_boots",
        "records",
        ["device_id", "seq"],
        unique=False,
        sqlite_where=sa.text("type = 'boot'"),
        postgresql_where=sa.text("type = 'boot'"),
    )


def downgrade() -> None:
    op.drop_index("ix_records_boots", table_name="records")
