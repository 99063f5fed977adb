"""The layering rules, checked at run time as well as by import-linter.

import-linter (``lint-imports`` in ``make test``, contracts in pyproject.toml)
reads the import statements. This file checks what a static reader cannot see:
that a fresh interpreter importing a pure module loads no I/O library, not even
through a package ``__init__``; and that the contracts in pyproject.toml name
every agent subpackage, so a new one cannot slip past the portal rule.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _contracts() -> list[dict[str, object]]:
    table = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, object]] = table["tool"]["importlinter"]["contracts"]
    return contracts


def _contract(contract_id: str) -> dict[str, object]:
    (found,) = [c for c in _contracts() if c.get("id") == contract_id]
    return found


# The sans-I/O core and the libraries it must not load: one list, the "pure"
# contract's, so this test and import-linter cannot drift apart.
PURE_MODULES: list[str] = list(_contract("pure")["source_modules"])  # type: ignore[call-overload]
IO_LIBRARIES = frozenset(_contract("pure")["forbidden_modules"]) | {"httpcore"}  # type: ignore[call-overload]


# What the import adds to a fresh interpreter (site start-up loads a few
# modules of its own, such as the editable-install finder).
_PROBE = """
import importlib, json, sys
before = set(sys.modules)
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _loaded_by(module: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, module],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    loaded: list[str] = json.loads(out)
    return loaded


@pytest.mark.parametrize("module", PURE_MODULES)
def test_a_pure_module_loads_no_io_library(module: str) -> None:
    tops = {name.partition(".")[0] for name in _loaded_by(module)}
    assert sorted(tops & IO_LIBRARIES) == [], f"importing {module} loads I/O libraries"


def test_the_protocol_loads_only_the_standard_library_and_cryptography() -> None:
    allowed = set(sys.stdlib_module_names) | {
        "agent",
        "cryptography",
        "_cffi_backend",
        "cffi",
        "_openssl",
    }
    loaded = _loaded_by("agent.protocol")
    foreign = sorted(
        name
        for name in loaded
        if name.partition(".")[0] not in allowed
        or (name.startswith("agent.") and not name.startswith("agent.protocol"))
    )
    assert foreign == []


def _agent_subpackages() -> set[str]:
    names = set()
    for path in (ROOT / "agent").iterdir():
        if path.name.startswith("_"):
            continue
        if path.is_dir() and (path / "__init__.py").exists():
            names.add(f"agent.{path.name}")
        elif path.suffix == ".py":
            names.add(f"agent.{path.stem}")
    return names


@pytest.mark.parametrize("contract_id", ["portal-uses-only-the-protocol", "protocol"])
def test_the_contracts_forbid_every_agent_module_but_the_protocol(contract_id: str) -> None:
    """A new agent subpackage must be added to the contracts, or this fails."""
    contract = _contract(contract_id)
    forbidden = set(contract["forbidden_modules"])  # type: ignore[call-overload]
    missing = sorted(_agent_subpackages() - {"agent.protocol"} - forbidden)
    assert missing == [], f"add {missing} to the '{contract['name']}' contract"
