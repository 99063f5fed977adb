"""Portal fixtures: the store on SQLite (always) and PostgreSQL (with a DSN), live server."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from portal.app import create_app
from portal.registry import add_center, create_admin_token, create_enroll_token, enroll_device
from portal.settings import Settings
from portal.state import Portal, open_portal
from tests.portal.support import LiveServer, SimDevice


def _pg_url(dsn: str, schema: str) -> str:
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Fresh settings: an empty SQLite file, or an empty PostgreSQL schema."""
    if request.param == "sqlite":
        yield Settings(
            data_dir=tmp_path / "data", rate_burst=1000, rate_per_s=1000.0, cookie_secure=False
        )
        return
    dsn = request.getfixturevalue("pg_dsn")
    schema = f"qatysu_test_{secrets.token_hex(4)}"
    admin = sqlalchemy.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield Settings(
            data_dir=tmp_path / "data",
            db_url=_pg_url(dsn, schema),
            rate_burst=1000,
            rate_per_s=1000.0,
            cookie_secure=False,  # plain http in tests: a Secure cookie never comes back
        )
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def portal(settings: Settings) -> Iterator[Portal]:
    opened = open_portal(settings)
    add_center(opened.engine, "c1", "Center one", now=opened.clock())
    yield opened
    opened.close()


def enroll(portal: Portal, center: str = "c1") -> SimDevice:
    """A device enrolled directly through the registry."""
    device = SimDevice()
    token = create_enroll_token(portal.engine, center, 3_600_000, now=portal.clock())
    done = enroll_device(portal.engine, token, device.public_key, "test", {}, now=portal.clock())
    device.device_id = done.device_id
    return device


@pytest.fixture
def device(portal: Portal) -> SimDevice:
    return enroll(portal)


@pytest.fixture
def live(portal: Portal) -> Iterator[LiveServer]:
    server = LiveServer(create_app(portal.settings, portal=portal))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        yield http


@pytest.fixture
def operator_token(portal: Portal) -> str:
    return create_admin_token(portal.engine, "op", "operator", now=portal.clock())


@pytest.fixture
def auditor_token(portal: Portal) -> str:
    return create_admin_token(portal.engine, "aud", "auditor", now=portal.clock())
