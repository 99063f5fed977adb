"""The migrations build exactly the tables of the one MetaData, on both back ends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import portal.reconcile.schema  # noqa: F401  (registers the reconciliation tables)
from portal.db.schema import metadata
from portal.state import Portal


def test_migrated_database_matches_the_metadata(portal: Portal) -> None:
    with portal.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == "0002_reconciliation"
        diff = compare_metadata(context, metadata)
    assert diff == []
