"""Every setting docs/portal.md lists is read from the environment."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from portal.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
_SPECIAL = {"tz": "UTC", "check_signatures": "tail", "language": "kk"}


def _documented() -> list[str]:
    text = (ROOT / "docs" / "portal.md").read_text(encoding="utf-8")
    section = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    return sorted(set(re.findall(r"`QATYSU_PORTAL_([A-Z_]+)`", section)) - {"DB"})


@pytest.mark.parametrize("name", _documented())
def test_documented_variable_is_read(name: str) -> None:
    field = name.lower()
    default = {f.name: f.default for f in dataclasses.fields(Settings)}[field]
    value = _SPECIAL.get(field, type(default)(default * 2) if default else 1)
    got = Settings.from_env(environ={f"QATYSU_PORTAL_{name}": str(value)})
    assert getattr(got, field) == value
