"""Shared fixtures. Each area keeps its own helpers in tests/<area>/ or tests/support/."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.tools import missing

# Variables that would make a test depend on the machine it runs on.
_ISOLATED = ("QATYSU_CONFIG", "QATYSU_PORTAL_DB", "GPIOZERO_PIN_FACTORY")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in _ISOLATED:
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The PostgreSQL server CI provides (QATYSU_TEST_PG_DSN); skipped without one."""
    dsn = os.environ.get("QATYSU_TEST_PG_DSN")
    if not dsn:
        missing("QATYSU_TEST_PG_DSN not set: no PostgreSQL server for this run")
    return dsn
