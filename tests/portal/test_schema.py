"""The migrations build exactly the tables of the one MetaData, on both back ends."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import portal.reconcile.schema  # noqa: F401  (registers the reconciliation tables)
from portal.auth import authenticate, session_principal, start_session
from portal.db import create_engine_for, upgrade_to_head
from portal.db.migrate import alembic_config
from portal.db.schema import metadata
from portal.registry import create_admin_token
from portal.settings import Settings
from portal.state import Portal


def test_migrated_database_matches_the_metadata(portal: Portal) -> None:
    with portal.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == "0011_center_district"
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_the_sessions_migration_applies_to_a_database_of_the_previous_head(
    settings: Settings,
) -> None:
    """A portal already in service (at 0002, with a token in use) upgrades in place."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine_for(settings)
    try:
        command.upgrade(alembic_config(engine), "0002_reconciliation")
        token = create_admin_token(engine, "aud", "auditor", now=1_000)
        with engine.connect() as conn:
            assert "sessions" not in inspect(conn).get_table_names()
        upgrade_to_head(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn)
            assert context.get_current_revision() == "0011_center_district"
            assert compare_metadata(context, metadata) == []
        principal = authenticate(engine, token)
        assert principal is not None
        sid = start_session(engine, principal, 2_000, 60)
        assert session_principal(engine, sid, 3_000) == principal
    finally:
        engine.dispose()
