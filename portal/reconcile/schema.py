"""Reconciliation tables (SQLAlchemy Core), in their own :data:`metadata`.

Created by Alembic revision ``0002_reconciliation``. Dates are ISO strings
(``YYYY-MM-DD``, local to the portal's zone), times of day ``HH:MM``; an open
validity bound is ``""`` so that it can be part of a key.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

__all__ = ["badges", "confirmations", "metadata", "roster", "schedule"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# A child's membership of a group (a child may attend several groups).
roster = Table(
    "roster",
    metadata,
    Column("child_id", String(64), nullable=False),
    Column("group_id", String(64), nullable=False),
    Column("center_id", String(64), nullable=False),
    Column("child_name", Text, nullable=False, default=""),
    Column("imported_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("child_id", "group_id"),
    Index("ix_roster_center", "center_id"),
)

# Badge UIDs, normalised (uppercase hex, no separators); one child per UID.
badges = Table(
    "badges",
    metadata,
    Column("uid", String(32), primary_key=True),
    Column("child_id", String(64), nullable=False),
    Column("imported_ms", BigInteger, nullable=False),
)

schedule = Table(
    "schedule",
    metadata,
    Column("group_id", String(64), nullable=False),
    Column("center_id", String(64), nullable=False),
    Column("weekday", Integer, nullable=False),  # 1 = Monday
    Column("valid_from", String(10), nullable=False, default=""),
    Column("valid_to", String(10), nullable=False, default=""),
    Column("start", String(5), nullable=False),
    Column("end", String(5), nullable=False),
    Column("price_kzt", BigInteger, nullable=False),
    Column("imported_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("group_id", "weekday", "valid_from"),
    Index("ix_schedule_center", "center_id"),
)

confirmations = Table(
    "confirmations",
    metadata,
    Column("child_id", String(64), nullable=False),
    Column("group_id", String(64), nullable=False),
    Column("date", String(10), nullable=False),
    Column("confirmed_at", String(32), nullable=False),
    Column("signer", Text, nullable=False),
    Column("imported_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("child_id", "group_id", "date"),
    Index("ix_confirmations_date", "date"),
)
