"""Core tables: centers, devices, records, receipts, declared gaps, evidence, tokens.

Revision ID: 0001_core
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "abuse_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_abuse_log")),
    )
    op.create_table(
        "admin_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_admin_tokens")),
    )
    op.create_table(
        "centers",
        sa.Column("center_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("center_id", name=op.f("pk_centers")),
    )
    op.create_table(
        "rejected_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("signed_by_device", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_records")),
    )
    op.create_index(
        "ix_rejected_records_device", "rejected_records", ["device_id", "received_ms"], unique=False
    )
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("center_id", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("agent_version", sa.Text(), nullable=False),
        sa.Column("hardware", sa.JSON(), nullable=False),
        sa.Column("enrolled_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=True),
        sa.Column("head_seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["center_id"], ["centers.center_id"], name=op.f("fk_devices_center_id_centers")
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_devices")),
        sa.UniqueConstraint("public_key", name=op.f("uq_devices_public_key")),
    )
    op.create_table(
        "enroll_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("center_id", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("used_by_key", sa.String(length=64), nullable=True),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["center_id"], ["centers.center_id"], name=op.f("fk_enroll_tokens_center_id_centers")
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_enroll_tokens")),
    )
    op.create_table(
        "declared_gaps",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("gap_record_hash", sa.String(length=64), nullable=False),
        sa.Column("gap_record_seq", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("declared_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.device_id"], name=op.f("fk_declared_gaps_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("device_id", "gap_record_hash", name=op.f("pk_declared_gaps")),
    )
    op.create_table(
        "integrity_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.device_id"], name=op.f("fk_integrity_events_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrity_events")),
    )
    op.create_index(
        "ix_integrity_events_device", "integrity_events", ["device_id", "at_ms"], unique=False
    )
    op.create_table(
        "receipts",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.Column("server_ms", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.device_id"], name=op.f("fk_receipts_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_receipts")),
    )
    op.create_index("ix_receipts_device_seq", "receipts", ["device_id", "seq"], unique=False)
    op.create_table(
        "records",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("prev", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("wall_ms", sa.BigInteger(), nullable=False),
        sa.Column("synced", sa.Boolean(), nullable=False),
        sa.Column("boot", sa.String(length=64), nullable=False),
        sa.Column("mono_ns", sa.BigInteger(), nullable=False),
        sa.Column("anchor", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("covered_ms", sa.BigInteger(), nullable=True),
        sa.Column("sig_checked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.device_id"], name=op.f("fk_records_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("device_id", "seq", name=op.f("pk_records")),
    )
    op.create_index("ix_records_type_wall", "records", ["type", "wall_ms"], unique=False)
    op.create_index("ix_records_unchecked", "records", ["sig_checked"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_records_unchecked", table_name="records")
    op.drop_index("ix_records_type_wall", table_name="records")
    op.drop_table("records")
    op.drop_index("ix_receipts_device_seq", table_name="receipts")
    op.drop_table("receipts")
    op.drop_index("ix_integrity_events_device", table_name="integrity_events")
    op.drop_table("integrity_events")
    op.drop_table("declared_gaps")
    op.drop_table("enroll_tokens")
    op.drop_table("devices")
    op.drop_index("ix_rejected_records_device", table_name="rejected_records")
    op.drop_table("rejected_records")
    op.drop_table("centers")
    op.drop_table("admin_tokens")
    op.drop_table("abuse_log")
