"""requirements/*.lock: every declared dependency pinned, within its floor, with hashes.

Installs (scripts/install.sh) take versions from the locks with
``--require-hashes``, so a lock that lags pyproject.toml would install a version
below a security floor, or fail on a Pi in the field. `make lock` rewrites them.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^ ;\\]+)", re.M)


def _pins(name: str) -> dict[str, tuple[Version, int]]:
    """Package -> (pinned version, number of hashes) of one lock file."""
    text = (ROOT / "requirements" / name).read_text(encoding="utf-8")
    pins: dict[str, tuple[Version, int]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = PIN.search(block)
        if match:
            pins[canonicalize_name(match[1])] = (Version(match[2]), block.count("--hash=sha256:"))
    return pins


def _declared(*extras: str) -> list[Requirement]:
    lines = list(PROJECT["dependencies"])
    for extra in extras:
        lines += PROJECT["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize(
    ("lock", "extras"),
    [("agent.lock", ()), ("agent-pi.lock", ("pi",)), ("portal.lock", ("portal",))],
)
def test_every_declared_dependency_is_pinned_within_its_floor_with_hashes(
    lock: str, extras: tuple[str, ...]
) -> None:
    pins = _pins(lock)
    assert pins, f"{lock} pins nothing"
    for requirement in _declared(*extras):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{lock} does not pin {requirement.name} (run make lock)"
        version, hashes = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {name}=={version}, outside {requirement} (run make lock)"
        )
        assert hashes >= 1
    assert all(count >= 1 for _, count in pins.values()), f"{lock} has a pin without a hash"


def test_the_pi_lock_adds_only_the_pi_packages_and_what_they_need() -> None:
    base, pi = _pins("agent.lock"), _pins("agent-pi.lock")
    assert set(base) <= set(pi)
    assert {"spidev", "rpi-lgpio"} <= set(pi) - set(base)
    assert all(pi[name][0] == base[name][0] for name in base)  # one version each


def test_mfrc522_is_pinned_alone_and_hashed() -> None:
    pins = _pins("mfrc522.lock")
    assert list(pins) == ["mfrc522"] and pins["mfrc522"][1] >= 1
