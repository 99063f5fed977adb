"""Personalisation stations authenticate with a key of their own: each station grant is
bound to the Ed25519 key of the station that enrolled with it, keeps the time of its
last signed request (replays are refused), and can be ended early.

Revision ID: 0010_card_stations
Revises: 0009_cards
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_card_stations"
down_revision = "0009_cards"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("card_grants") as batch:
        batch.add_column(sa.Column("station_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("enrolled_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("last_at_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("ended_ms", sa.BigInteger(), nullable=True))
        batch.create_unique_constraint("uq_card_grants_station_key", ["station_key"])


def downgrade() -> None:
    with op.batch_alter_table("card_grants") as batch:
        batch.drop_constraint("uq_card_grants_station_key", type_="unique")
        batch.drop_column("ended_ms")
        batch.drop_column("last_at_ms")
        batch.drop_column("enrolled_ms")
        batch.drop_column("station_key")
