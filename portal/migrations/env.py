"""Alembic environment: always given an engine by portal.db.migrate (no alembic.ini)."""

from __future__ import annotations

import importlib
import logging

from alembic import context
from sqlalchemy import MetaData

from portal.db.schema import metadata as core_metadata

logger = logging.getLogger("portal.migrations")


def _target_metadata() -> list[MetaData]:
    targets = [core_metadata]
    try:  # the reconciliation tables, when that module is installed
        reconcile = importlib.import_module("portal.reconcile.schema")
    except ImportError:
        return targets
    extra = getattr(reconcile, "metadata", None)
    if isinstance(extra, MetaData) and extra is not core_metadata:
        targets.append(extra)
    return targets


def run_migrations_online() -> None:
    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=_target_metadata(),
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
