"""The card master key: created 0600, refused when others may read it, never logged."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from portal.exceptions import PortalConfigError
from portal.keys import CARD_MASTER_FILE, load_or_create_card_master


def test_created_private_and_stable(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    data = tmp_path / "data"
    key = load_or_create_card_master(data)
    path = data / CARD_MASTER_FILE
    assert len(key) == 16
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_or_create_card_master(data) == key
    assert key.hex() not in caplog.text.lower()
    assert CARD_MASTER_FILE in caplog.text


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_refused_when_wider(tmp_path: Path, mode: int) -> None:
    data = tmp_path / "data"
    load_or_create_card_master(data)
    (data / CARD_MASTER_FILE).chmod(mode)
    with pytest.raises(PortalConfigError, match="chmod 600"):
        load_or_create_card_master(data)


def test_a_damaged_file_is_named_not_replaced(tmp_path: Path) -> None:
    data = tmp_path / "data"
    load_or_create_card_master(data)
    path = data / CARD_MASTER_FILE
    path.write_text("not hex\n")
    with pytest.raises(PortalConfigError, match="not a card master key"):
        load_or_create_card_master(data)
    assert path.read_text() == "not hex\n"
