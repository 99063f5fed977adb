"""Cards with their own proof of a read (NTAG 424 DNA SUN): the card registry, station
grants, accepted counters, and the per-center require_card_auth setting.

Revision ID: 0009_cards
Revises: 0008_boot_records_index
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_cards"
down_revision = "0008_boot_records_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("centers") as batch:
        batch.add_column(
            sa.Column("require_card_auth", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "cards",
        sa.Column("uid", sa.String(14), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("key_source", sa.String(16), nullable=False),
        sa.Column("sealed_keys", sa.Text(), nullable=True),
        sa.Column("activated_counter", sa.BigInteger(), nullable=True),
        sa.Column("grant_hash", sa.String(64), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("activated_ms", sa.BigInteger(), nullable=True),
        sa.Column("revoked_ms", sa.BigInteger(), nullable=True),
        sa.Column("replaced_by", sa.String(14), nullable=True),
        sa.PrimaryKeyConstraint("uid", name="pk_cards"),
    )
    op.create_table(
        "card_grants",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_card_grants"),
    )
    op.create_table(
        "card_counters",
        sa.Column("uid", sa.String(14), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.Column("time_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("uid", "device_id", "seq", name="pk_card_counters"),
    )
    op.create_index("ix_card_counters_uid_time", "card_counters", ["uid", "time_ms"])


def downgrade() -> None:
    op.drop_index("ix_card_counters_uid_time", table_name="card_counters")
    op.drop_table("card_counters")
    op.drop_table("card_grants")
    op.drop_table("cards")
    with op.batch_alter_table("centers") as batch:
        batch.drop_column("require_card_auth")
