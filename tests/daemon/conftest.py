"""Daemon fixtures: a live portal on SQLite and an enrolled device folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.support import Device, LivePortal, make_device


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[LivePortal]:
    live = LivePortal(tmp_path / "portal")
    yield live
    live.close()


@pytest.fixture
def device(tmp_path: Path, portal: LivePortal) -> Device:
    return make_device(tmp_path / "device", portal)
