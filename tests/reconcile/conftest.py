"""Reconciliation fixtures: a migrated store on SQLite (always) and PostgreSQL (with a DSN)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from portal.settings import Settings
from portal.state import Portal, open_portal


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    if request.param == "sqlite":
        yield Settings(data_dir=tmp_path / "data", cookie_secure=False)
        return
    dsn = request.getfixturevalue("pg_dsn")
    schema = f"qatysu_rec_{secrets.token_hex(4)}"
    admin = sqlalchemy.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in dsn else "?"
    try:
        yield Settings(
            data_dir=tmp_path / "data",
            db_url=f"{dsn}{sep}options=-csearch_path%3D{schema}",
            cookie_secure=False,
        )
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def store(store_settings: Settings) -> Iterator[Portal]:
    opened = open_portal(store_settings)
    yield opened
    opened.close()
