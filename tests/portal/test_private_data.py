"""The data dir and the SQLite files are private whatever the umask (docs/portal.md)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from portal.cli import main
from portal.exceptions import PortalConfigError
from portal.registry import add_center
from portal.settings import DB_FILE, Settings
from portal.state import open_portal


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """As a portal started by hand in a login shell."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _open_and_write(data_dir: Path) -> None:
    portal = open_portal(Settings(data_dir=data_dir))
    try:
        add_center(portal.engine, "c1", "Center one", now=portal.clock())
        sides = [data_dir / f"{DB_FILE}{s}" for s in ("-wal", "-shm", "-journal")]
        assert any(p.exists() for p in sides)  # WAL mode: checked while they exist
        assert {p.name: _mode(p) for p in sides if p.exists()} == {
            p.name: 0o600 for p in sides if p.exists()
        }
    finally:
        portal.close()


def test_a_new_data_dir_and_database_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _open_and_write(data_dir)
    assert _mode(data_dir) == 0o700
    assert _mode(data_dir / DB_FILE) == 0o600
    assert _mode(data_dir / "portal.key") == 0o600


def test_an_empty_data_dir_made_by_hand_is_tightened(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    _open_and_write(data_dir)
    assert _mode(data_dir) == 0o700


@pytest.mark.parametrize(
    ("name", "mode", "chmod"),
    [("", 0o755, "700"), (DB_FILE, 0o644, "600"), (f"{DB_FILE}-wal", 0o640, "600")],
    ids=["data-dir", "database", "wal"],
)
def test_shared_data_is_refused_with_the_chmod_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, mode: int, chmod: str
) -> None:
    data_dir = tmp_path / "data"
    _open_and_write(data_dir)
    target = data_dir / name if name else data_dir
    target.touch()
    target.chmod(mode)
    with pytest.raises(PortalConfigError, match=f"run chmod {chmod} {target}$"):
        open_portal(Settings(data_dir=data_dir))
    code = main(["--data-dir", str(data_dir), "devices"])
    err = capsys.readouterr().err
    assert code == 2 and f"chmod {chmod} {target}" in err and len(err.strip().splitlines()) == 1
