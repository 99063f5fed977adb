"""Reconciliation tables: roster, badges, schedule, confirmations.

Revision ID: 0002_reconciliation
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_reconciliation"
down_revision = "0001_core"
branch_labels = None
depends_on = None

RECONCILE_COLUMNS = (
    "device_id",
    "seq",
    "type",
    "wall_ms",
    "synced",
    "boot",
    "mono_ns",
    "anchor",
    "covered_ms",
    "received_ms",
)


def upgrade() -> None:
    op.create_table(
        "roster",
        sa.Column("child_id", sa.String(length=64), nullable=False),
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("center_id", sa.String(length=64), nullable=False),
        sa.Column("child_name", sa.Text(), nullable=False),
        sa.Column("imported_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("child_id", "group_id", name=op.f("pk_roster")),
    )
    op.create_index("ix_roster_center", "roster", ["center_id"], unique=False)
    op.create_table(
        "badges",
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("child_id", sa.String(length=64), nullable=False),
        sa.Column("imported_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("uid", name=op.f("pk_badges")),
    )
    op.create_table(
        "schedule",
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("center_id", sa.String(length=64), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.String(length=10), nullable=False),
        sa.Column("valid_to", sa.String(length=10), nullable=False),
        sa.Column("start", sa.String(length=5), nullable=False),
        sa.Column("end", sa.String(length=5), nullable=False),
        sa.Column("price_kzt", sa.BigInteger(), nullable=False),
        sa.Column("imported_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "weekday", "valid_from", name=op.f("pk_schedule")),
    )
    op.create_index("ix_schedule_center", "schedule", ["center_id"], unique=False)
    op.create_table(
        "confirmations",
        sa.Column("child_id", sa.String(length=64), nullable=False),
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("date", sa.String(length=10), nullable=False),
        sa.Column("confirmed_at", sa.String(length=32), nullable=False),
        sa.Column("signer", sa.Text(), nullable=False),
        sa.Column("imported_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("child_id", "group_id", "date", name=op.f("pk_confirmations")),
    )
    op.create_index("ix_confirmations_date", "confirmations", ["date"], unique=False)
    # What the reconciliation reads of every record, so that a city-month is read from
    # this index alone and not from the wide rows (see docs/decisions/0801).
    op.create_index("ix_records_reconcile", "records", list(RECONCILE_COLUMNS), unique=False)


def downgrade() -> None:
    op.drop_index("ix_records_reconcile", table_name="records")
    op.drop_index("ix_confirmations_date", table_name="confirmations")
    op.drop_table("confirmations")
    op.drop_index("ix_schedule_center", table_name="schedule")
    op.drop_table("schedule")
    op.drop_table("badges")
    op.drop_index("ix_roster_center", table_name="roster")
    op.drop_table("roster")
