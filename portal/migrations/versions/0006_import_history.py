"""Import history: every version of roster, badge, schedule and confirmation rows;
schedule approvals; confirmations' confirmed_at as Unix ms.

The rows already stored become the first version of their key (with their
``imported_ms`` and file ``""``), and the schedule rows are marked ``baseline``
(they apply from the beginning: what they replaced before this revision is not
known). ``confirmed_ms`` of the stored confirmations stays NULL: the loader
reads their ``confirmed_at`` in the portal's zone.

Revision ID: 0006_import_history
Revises: 0004_rate_buckets
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_import_history"
down_revision = "0005_device_addresses"
branch_labels = None
depends_on = None


def _versions(name: str, key: list[str], *columns: sa.Column[object]) -> None:
    op.create_table(
        name,
        sa.Column("version", sa.Integer(), autoincrement=True, nullable=False),
        *columns,
        sa.Column("imported_ms", sa.BigInteger(), nullable=False),
        sa.Column("file", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f(f"pk_{name}")),
    )
    op.create_index(f"ix_{name}_key", name, key, unique=False)


def upgrade() -> None:
    _versions(
        "roster_versions",
        ["child_id", "group_id"],
        sa.Column("child_id", sa.String(length=64), nullable=False),
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("center_id", sa.String(length=64), nullable=False),
        sa.Column("child_name", sa.Text(), nullable=False),
    )
    _versions(
        "badge_versions",
        ["uid"],
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("child_id", sa.String(length=64), nullable=False),
    )
    _versions(
        "schedule_versions",
        ["group_id", "weekday", "valid_from"],
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("center_id", sa.String(length=64), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.String(length=10), nullable=False),
        sa.Column("valid_to", sa.String(length=10), nullable=False),
        sa.Column("start", sa.String(length=5), nullable=False),
        sa.Column("end", sa.String(length=5), nullable=False),
        sa.Column("price_kzt", sa.BigInteger(), nullable=False),
        sa.Column("baseline", sa.Boolean(), nullable=False),
    )
    _versions(
        "confirmation_versions",
        ["child_id", "group_id", "date"],
        sa.Column("child_id", sa.String(length=64), nullable=False),
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("date", sa.String(length=10), nullable=False),
        sa.Column("confirmed_at", sa.String(length=32), nullable=False),
        sa.Column("signer", sa.Text(), nullable=False),
    )
    op.create_table(
        "schedule_approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("first", sa.String(length=10), nullable=False),
        sa.Column("last", sa.String(length=10), nullable=False),
        sa.Column("approved_ms", sa.BigInteger(), nullable=False),
        sa.Column("by", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_approvals")),
    )
    op.create_index("ix_schedule_approvals_group", "schedule_approvals", ["group_id"], unique=False)
    with op.batch_alter_table("confirmations") as batch:
        batch.add_column(sa.Column("confirmed_ms", sa.BigInteger(), nullable=True))
    # What is stored becomes the first version of each key, nothing dropped.
    # A membership's time is when the child first appeared (a later change of the
    # name updated roster.imported_ms in place): it holds from the beginning.
    op.execute(
        "INSERT INTO roster_versions (child_id, group_id, center_id, child_name, "
        "imported_ms, file) SELECT r.child_id, r.group_id, r.center_id, r.child_name, "
        "(SELECT MIN(x.imported_ms) FROM roster x WHERE x.child_id = r.child_id), '' "
        "FROM roster r ORDER BY r.imported_ms, r.child_id, r.group_id"
    )
    op.execute(
        "INSERT INTO badge_versions (uid, child_id, imported_ms, file) "
        "SELECT uid, child_id, imported_ms, '' FROM badges ORDER BY imported_ms, uid"
    )
    op.execute(
        "INSERT INTO schedule_versions (group_id, center_id, weekday, valid_from, valid_to, "
        'start, "end", price_kzt, baseline, imported_ms, file) '
        'SELECT group_id, center_id, weekday, valid_from, valid_to, start, "end", price_kzt, '
        "TRUE, imported_ms, '' FROM schedule ORDER BY imported_ms, group_id, weekday, valid_from"
    )
    op.execute(
        "INSERT INTO confirmation_versions (child_id, group_id, date, confirmed_at, signer, "
        "imported_ms, file) SELECT child_id, group_id, date, confirmed_at, signer, imported_ms, "
        "'' FROM confirmations ORDER BY imported_ms, date, child_id, group_id"
    )


def downgrade() -> None:
    with op.batch_alter_table("confirmations") as batch:
        batch.drop_column("confirmed_ms")
    op.drop_index("ix_schedule_approvals_group", table_name="schedule_approvals")
    op.drop_table("schedule_approvals")
    for name in ("confirmation_versions", "schedule_versions", "badge_versions", "roster_versions"):
        op.drop_index(f"ix_{name}_key", table_name=name)
        op.drop_table(name)
