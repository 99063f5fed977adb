"""Centers carry the city district they are in (the auditors' overview filters by it).

Revision ID: 0011_center_district
Revises: 0010_card_stations
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_center_district"
down_revision = "0010_card_stations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("centers") as batch:
        batch.add_column(sa.Column("district", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("centers") as batch:
        batch.drop_column("district")
