"""Driver selection by name, the way pyserial maps URL schemes to handler modules.

:data:`DRIVERS` is the one list of reader drivers. ``create_reader`` turns a
``[[readers]]`` entry into a :class:`~agent.readers.base.Reader`;
``config_class`` gives the keys a driver accepts, for loading and ``config
set``. Driver modules are imported only when named and load no I/O library
on import, so a device with an RDM6300 never imports spidev or the
``mfrc522`` package.
"""

from __future__ import annotations

import importlib
from dataclasses import fields
from typing import Any, get_type_hints

from agent.clock import Clock
from agent.exceptions import ConfigError, ReaderError
from agent.readers.base import Problem, Reader, ReaderConfig, Requirements

__all__ = [
    "DRIVERS",
    "check",
    "config_class",
    "create_reader",
    "driver_class",
    "reader_keys",
    "requirements",
]

# driver name -> "module:Class"
DRIVERS: dict[str, str] = {
    "mfrc522": "agent.readers.mfrc522:Mfrc522Reader",
    "rdm6300": "agent.readers.rdm6300:Rdm6300Reader",
    "serial-line": "agent.readers.serial_line:SerialLineReader",
    "simulated": "agent.readers.simulated:SimulatedReader",
}


def driver_class(name: str, reader: str = "?") -> type[Reader[Any]]:
    """The class behind driver ``name``; ConfigError names the reader and the known drivers."""
    target = DRIVERS.get(name)
    if target is None:
        raise ConfigError(
            f"reader {reader!r}: unknown driver {name!r} (known: {', '.join(sorted(DRIVERS))})"
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ReaderError(f"reader {reader!r}: driver {name!r} cannot be loaded: {exc}") from exc
    cls: type[Reader[Any]] = getattr(module, attr)
    return cls


def config_class(name: str, reader: str = "?") -> type[ReaderConfig]:
    """The config dataclass of driver ``name`` (its ``[[readers]]`` keys)."""
    return driver_class(name, reader).config_class


def reader_keys() -> dict[str, Any]:
    """Every ``[[readers]]`` key any driver accepts, with its type (for ``config set``)."""
    keys: dict[str, Any] = {}
    for name in DRIVERS:
        cls = config_class(name)
        for key, hint in get_type_hints(cls).items():
            if key in {f.name for f in fields(cls)}:
                keys.setdefault(key, hint)
    return keys


def _own_config(cfg: ReaderConfig) -> tuple[type[Reader[Any]], ReaderConfig]:
    cls = driver_class(cfg.driver, cfg.name)
    if not isinstance(cfg, cls.config_class):
        raise ConfigError(
            f"reader {cfg.name!r}: driver {cfg.driver} needs a {cls.config_class.__name__}, "
            f"not a {type(cfg).__name__}"
        )
    return cls, cfg


def create_reader(cfg: ReaderConfig, *, clock: Clock | None = None, **inject: Any) -> Reader[Any]:
    """The reader ``cfg`` describes; ``inject`` reaches the driver's constructor (a fake bus)."""
    cls, own = _own_config(cfg)
    return cls.from_config(own, clock=clock, **inject)


def requirements(cfg: ReaderConfig) -> Requirements:
    """What ``cfg`` needs of the board: pins, bus pins, device nodes, boot-config lines."""
    cls, own = _own_config(cfg)
    return cls.requirements(own)


def check(cfg: ReaderConfig) -> list[Problem]:
    """The driver's own findings about ``cfg`` (values that make no sense for it)."""
    cls, own = _own_config(cfg)
    return cls.check(own)
