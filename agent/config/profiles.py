"""Board profiles: one ``firmware_config/<name>/`` folder per board + reader combination.

Each folder holds ``profile.toml`` (name, description, boards, pip extras,
device nodes and groups the agent needs, notes, and under ``[config]`` the
agent config fragment with BCM pins), ``boot-config.txt`` (the lines
``config.txt`` needs) and ``README.md`` (the wiring table for technicians).
``qatysu init --profile`` writes a config from ``config``; ``qatysu doctor``
checks ``boot_config_lines``, ``devices`` and ``groups``.

Where the folders are found, first match wins (docs/decisions/0451):

1. ``$QATYSU_FIRMWARE_CONFIG``, when set (it must then be a directory);
2. ``firmware_config/`` next to the ``agent`` package: a source checkout, an
   editable install (``pip install -e .``, what ``make install`` and the
   install script do);
3. ``<sys.prefix>/share/qatysu/firmware_config``: a wheel install, which
   ships the folders as data files (pyproject ``[tool.setuptools.data-files]``);
4. ``/usr/share/qatysu/firmware_config``: a distribution package.
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import AgentConfig, config_from_dict
from agent.exceptions import ConfigError

__all__ = [
    "ENV_VAR",
    "Profile",
    "list_profiles",
    "load_profile",
    "profile_names",
    "profiles_dir",
]

ENV_VAR = "QATYSU_FIRMWARE_CONFIG"
PROFILE_FILE = "profile.toml"
BOOT_CONFIG_FILE = "boot-config.txt"

_REQUIRED_STR = ("name", "description")
_LISTS = ("boards", "extras", "device_classes", "devices", "groups", "notes")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    path: Path  # the profile's folder
    config: dict[str, Any]  # the agent config fragment: readers, doors, tamper, feedback
    boot_config_lines: tuple[str, ...] = ()
    boards: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()  # pip extras, e.g. ("pi",)
    device_classes: tuple[str, ...] = ()  # spidev, gpiochip, uart, ttyUSB
    devices: tuple[str, ...] = ()  # the nodes the fragment uses, e.g. /dev/spidev0.0
    groups: tuple[str, ...] = ()  # the agent's user must be in these
    notes: tuple[str, ...] = field(default=())

    @property
    def readme(self) -> Path:
        return self.path / "README.md"

    def agent_config(self) -> AgentConfig:
        """The fragment as validated config objects; ConfigError names the profile file."""
        return config_from_dict(self.config, self.path / PROFILE_FILE)


def _candidates() -> list[Path]:
    return [
        Path(__file__).resolve().parents[2] / "firmware_config",
        Path(sys.prefix) / "share" / "qatysu" / "firmware_config",
        Path("/usr/share/qatysu/firmware_config"),
    ]


def profiles_dir() -> Path:
    """The firmware_config directory in use; the only place that reads the env variable."""
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override)
        if not path.is_dir():
            raise ConfigError(f"{ENV_VAR}={override}: not a directory")
        return path
    candidates = _candidates()
    for path in candidates:
        if path.is_dir():
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise ConfigError(f"no firmware_config directory (looked in {looked}; set {ENV_VAR})")


def profile_names() -> list[str]:
    root = profiles_dir()
    return sorted(p.name for p in root.iterdir() if (p / PROFILE_FILE).is_file())


def list_profiles() -> list[Profile]:
    """Every profile, sorted by name."""
    return [load_profile(name) for name in profile_names()]


def load_profile(name: str) -> Profile:
    """One profile by folder name; ConfigError names the file and key at fault."""
    root = profiles_dir()
    folder = root / name
    path = folder / PROFILE_FILE
    if "/" in name or name.startswith(".") or not path.is_file():
        known = ", ".join(profile_names()) or "none"
        raise ConfigError(f"unknown profile {name!r} (known: {known})")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    for key in _REQUIRED_STR:
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ConfigError(f"{path}: {key} is required (a string)")
    if raw["name"] != name:
        raise ConfigError(f"{path}: name {raw['name']!r} differs from its folder {name!r}")
    lists: dict[str, tuple[str, ...]] = {}
    for key in _LISTS:
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: {key} must be a list of strings")
        lists[key] = tuple(value)
    config = raw.get("config", {})
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: [config] must be a table")
    unknown = set(raw) - {*_REQUIRED_STR, *_LISTS, "config"}
    if unknown:
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]}")
    return Profile(
        name=name,
        description=raw["description"],
        path=folder,
        config=config,
        boot_config_lines=_boot_lines(folder / BOOT_CONFIG_FILE),
        **lists,
    )


def _boot_lines(path: Path) -> tuple[str, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))
