"""Alembic environment: always given an engine by portal.db.migrate (no alembic.ini)."""

from __future__ import annotations

from alembic import context

import portal.reconcile.schema  # noqa: F401  (registers the reconciliation tables)
from portal.db.schema import metadata


def run_migrations_online() -> None:
    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
