"""Machine tools some tests need (chromium, systemd-analyze, strace, openssl).

Outside CI a missing tool skips its tests with the reason. In CI (``CI`` set,
as .ci/run is run) it fails them: .ci/run installs every tool, so a skip there
would hide a missing install step, not a missing machine.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["in_ci", "missing", "require_tool"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Skip with ``reason``, or fail with it under CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI installs it in .ci/run: that step failed)", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str, *, hint: str = "") -> str:
    """The path of program ``name``; skips (fails under CI) when it is absent."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed on this machine{hint}")
        raise AssertionError("unreachable")  # missing() raised
    return path
