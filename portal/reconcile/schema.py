"""Reconciliation tables (SQLAlchemy Core), on the portal's one :data:`metadata`.

Created by Alembic revision ``0002_reconciliation``, with the covering index on
``records`` that the reconciliation reads from. Dates are ISO strings
(``YYYY-MM-DD``, local to the portal's zone), times of day ``HH:MM``; an open
validity bound is ``""`` so that it can be part of a key.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from portal.db.schema import metadata, records

__all__ = ["RECONCILE_COLUMNS", "badges", "confirmations", "roster", "schedule", "spotchecks"]

# What the reconciliation reads of every record, so that a city-month is read from
# this index alone and not from the wide rows (docs/decisions/0801).
RECONCILE_COLUMNS = (
    "device_id", "seq", "type", "wall_ms", "synced", "boot", "mono_ns", "anchor",
    "covered_ms", "received_ms",
)  # fmt: skip
Index("ix_records_reconcile", *(records.c[name] for name in RECONCILE_COLUMNS))

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

# An inspector's unannounced count at a center (the risk queue shows it next to the
# score of that center and week). Created by revision ``0007_spotchecks``.
spotchecks = Table(
    "spotchecks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("center_id", String(64), nullable=False),
    Column("date", String(10), nullable=False),
    Column("present", Integer, nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("by", Text, nullable=False, default=""),
    Column("recorded_ms", BigInteger, nullable=False),
    Index("ix_spotchecks_center_date", "center_id", "date"),
)
