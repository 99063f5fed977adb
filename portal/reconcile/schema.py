"""Reconciliation tables (SQLAlchemy Core), on the portal's one :data:`metadata`.

Created by Alembic revision ``0002_reconciliation``, with the covering index on
``records`` that the reconciliation reads from. Dates are ISO strings
(``YYYY-MM-DD``, local to the portal's zone), times of day ``HH:MM``; an open
validity bound is ``""`` so that it can be part of a key.

The four import tables hold the current row of each key; every row an import
wrote (first version or change) is also kept in its ``*_versions`` table, in
the order of ``version`` (Alembic revision ``0006_import_history``): the
reconciliation judges a lesson by the schedule as it stood on its date and a
read by the badge's owner at its time (docs/reconciliation.md, "Import history").
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from portal.db.schema import metadata, records

__all__ = [
    "RECONCILE_COLUMNS",
    "badge_versions",
    "badges",
    "confirmation_versions",
    "confirmations",
    "roster",
    "roster_versions",
    "schedule",
    "schedule_approvals",
    "schedule_versions",
    "spotchecks",
]

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
    # confirmed_at as Unix ms, from the import (NULL: stored before 0006, or empty).
    Column("confirmed_ms", BigInteger, nullable=True),
    PrimaryKeyConstraint("child_id", "group_id", "date"),
    Index("ix_confirmations_date", "date"),
)


def _version(name: str, *columns: Column[object], key: tuple[str, ...]) -> Table:
    """Every version an import wrote of a table's rows: a serial, the row, when and from
    which file."""
    return Table(
        name,
        metadata,
        Column("version", Integer, primary_key=True, autoincrement=True),
        *columns,
        Column("imported_ms", BigInteger, nullable=False),
        Column("file", Text, nullable=False, default=""),
        Index(f"ix_{name}_key", *key),
    )


roster_versions = _version(
    "roster_versions",
    Column("child_id", String(64), nullable=False),
    Column("group_id", String(64), nullable=False),
    Column("center_id", String(64), nullable=False),
    Column("child_name", Text, nullable=False, default=""),
    key=("child_id", "group_id"),
)
badge_versions = _version(
    "badge_versions",
    Column("uid", String(32), nullable=False),
    Column("child_id", String(64), nullable=False),
    key=("uid",),
)
schedule_versions = _version(
    "schedule_versions",
    Column("group_id", String(64), nullable=False),
    Column("center_id", String(64), nullable=False),
    Column("weekday", Integer, nullable=False),
    Column("valid_from", String(10), nullable=False, default=""),
    Column("valid_to", String(10), nullable=False, default=""),
    Column("start", String(5), nullable=False),
    Column("end", String(5), nullable=False),
    Column("price_kzt", BigInteger, nullable=False),
    # Written by the city's first schedule import (or stored before 0006): the row
    # applies from the beginning, not from its import.
    Column("baseline", Boolean, nullable=False, default=False),
    key=("group_id", "weekday", "valid_from"),
)
confirmation_versions = _version(
    "confirmation_versions",
    Column("child_id", String(64), nullable=False),
    Column("group_id", String(64), nullable=False),
    Column("date", String(10), nullable=False),
    Column("confirmed_at", String(32), nullable=False),
    Column("signer", Text, nullable=False),
    key=("child_id", "group_id", "date"),
)

# An operator's approval of a group's late-changed schedule for a range of dates: the
# schedule as it stood at approved_ms applies to those lessons (decision 0840).
schedule_approvals = Table(
    "schedule_approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_id", String(64), nullable=False),
    Column("first", String(10), nullable=False),
    Column("last", String(10), nullable=False),
    Column("approved_ms", BigInteger, nullable=False),
    Column("by", Text, nullable=False),
    Column("note", Text, nullable=False, default=""),
    Index("ix_schedule_approvals_group", "group_id"),
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
