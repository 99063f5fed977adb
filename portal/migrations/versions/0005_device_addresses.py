"""The network addresses of each device's signed uploads, as runs (the clone check).

Revision ID: 0005_device_addresses
Revises: 0004_rate_buckets
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_device_addresses"
down_revision = "0004_rate_buckets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_addresses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("first_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.Column("uploads", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.device_id"],
            name=op.f("fk_device_addresses_device_id_devices"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_addresses")),
    )
    op.create_index(
        "ix_device_addresses_device", "device_addresses", ["device_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_device_addresses_device", table_name="device_addresses")
    op.drop_table("device_addresses")
