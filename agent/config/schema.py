"""The agent's configuration as validated value objects, and loading it (docs/technician.md).

This module holds the shapes and their defaults, and turns TOML into them
with one-line errors naming file and key (and the nearest valid key for a
typo). A ``[[readers]]`` entry's keys belong to its driver: the entry loads
into that driver's :class:`~agent.readers.base.ReaderConfig` subclass, found
through :mod:`agent.readers.registry`.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from agent.exceptions import ConfigError
from agent.hardware.settings import FeedbackConfig, SensorConfig
from agent.readers.base import ReaderConfig
from agent.readers.registry import DRIVERS, config_class, reader_keys

__all__ = [
    "AgentConfig",
    "BufferConfig",
    "DeviceConfig",
    "FeedbackConfig",
    "HeartbeatConfig",
    "PortalConfig",
    "ReaderConfig",
    "SensorConfig",
    "config_from_dict",
    "load_config",
]


@dataclass(frozen=True)
class DeviceConfig:
    state_dir: Path = Path("/var/lib/qatysu")
    control_socket: Path = Path("/run/qatysu/control.sock")


@dataclass(frozen=True)
class PortalConfig:
    url: str = ""
    device_id: str = ""  # written by `qatysu enroll`
    center_id: str = ""
    public_key: str = ""  # the pinned portal key, base64
    ca_file: str = ""  # extra CA bundle for a city PKI; TLS is always verified
    batch_records: int = 500
    batch_bytes: int = 1_000_000
    upload_delay_ms: int = 200  # gather taps this long before an upload
    upload_interval_s: float = 30.0  # timer upload even without new records
    timeout_s: float = 10.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0


@dataclass(frozen=True)
class HeartbeatConfig:
    interval_s: int = 300


@dataclass(frozen=True)
class BufferConfig:
    segment_records: int = 256
    segment_age_s: int = 3600
    quota_mb: int = 512  # warn (alarm record, red) before the disk is full
    quota_warn_percent: int = 80  # RecordBuffer.quota_warning turns true at this share
    retain_acknowledged: bool = False  # default: delete once a receipt covers them


@dataclass(frozen=True)
class AgentConfig:
    path: Path | None = None  # the file it was loaded from, for messages
    device: DeviceConfig = field(default_factory=DeviceConfig)
    portal: PortalConfig = field(default_factory=PortalConfig)
    readers: tuple[ReaderConfig, ...] = ()
    doors: tuple[SensorConfig, ...] = ()
    tamper: tuple[SensorConfig, ...] = ()
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)

    @property
    def key_path(self) -> Path:
        return self.device.state_dir / "device.key"


# --- loading -----------------------------------------------------------------

_SECTIONS: dict[str, type[Any]] = {
    "device": DeviceConfig,
    "portal": PortalConfig,
    "feedback": FeedbackConfig,
    "heartbeat": HeartbeatConfig,
    "buffer": BufferConfig,
}
_LISTS: dict[str, type[Any]] = {
    "readers": ReaderConfig,  # the base; each entry loads as its driver's subclass
    "doors": SensorConfig,
    "tamper": SensorConfig,
}


def load_config(path: Path) -> AgentConfig:
    """Read and validate ``path``; raises :class:`ConfigError` naming file and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no config file (run 'qatysu init --profile NAME')") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return config_from_dict(raw, path)


def config_from_dict(raw: Mapping[str, Any], path: Path | None = None) -> AgentConfig:
    where = str(path) if path else "config"
    values: dict[str, Any] = {"path": path}
    for key, value in raw.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: [{key}] must be a table")
            values[key] = _build(_SECTIONS[key], value, where, key)
        elif key in _LISTS:
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ConfigError(f"{where}: {key} must be written as [[{key}]] tables")
            build = _build_reader if key == "readers" else _build_entry(_LISTS[key])
            values[key] = tuple(
                build(item, where, f"{key}.{index}") for index, item in enumerate(value)
            )
        else:
            raise ConfigError(f"{where}: unknown section {key!r}{_did_you_mean(key, _ALL_TOP)}")
    return AgentConfig(**values)


_ALL_TOP = [*_SECTIONS, *_LISTS]


def _did_you_mean(key: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(key, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _build_entry(cls: type[Any]) -> Any:
    def build(table: Mapping[str, Any], where: str, prefix: str) -> Any:
        return _build(cls, table, where, prefix)

    return build


def _build_reader(table: Mapping[str, Any], where: str, prefix: str) -> ReaderConfig:
    """An entry of ``[[readers]]``, as the config class of its ``driver``."""
    driver = table.get("driver")
    if "driver" not in table:
        # No driver to ask: a key no driver knows is a typo, anything else waits for a driver.
        known = list(reader_keys())
        for key in table:
            if key not in known:
                raise ConfigError(f"{where}: unknown key {prefix}.{key}{_did_you_mean(key, known)}")
        raise ConfigError(f"{where}: {prefix}.driver is required")
    if not isinstance(driver, str):
        raise ConfigError(f"{where}: {prefix}.driver must be str, not {driver!r}")
    if driver not in DRIVERS:
        raise ConfigError(
            f"{where}: {prefix}.driver: unknown driver {driver!r} "
            f"(known: {', '.join(sorted(DRIVERS))})"
        )
    built: ReaderConfig = _build(config_class(driver), table, where, prefix)
    return built


def _build(cls: type[Any], table: Mapping[str, Any], where: str, prefix: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(
                f"{where}: unknown key {prefix}.{key}{_did_you_mean(key, list(known))}"
            )
        value = _coerce(value, hints[key], where, f"{prefix}.{key}")
        if known[key].init:  # a driver's own ``driver`` field is fixed, not passed
            kwargs[key] = value
    missing = [
        f.name
        for f in known.values()
        if f.init and f.default is MISSING and f.default_factory is MISSING and f.name not in kwargs
    ]
    if missing:
        raise ConfigError(f"{where}: {prefix}.{missing[0]} is required")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str, key: str) -> Any:
    accepted = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
    for kind in accepted:
        if kind is type(None) and value is None:
            return None
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
        if kind is Path and isinstance(value, str):
            return Path(value)
    names = " or ".join(getattr(k, "__name__", str(k)) for k in accepted)
    raise ConfigError(f"{where}: {key} must be {names}, not {value!r}")
