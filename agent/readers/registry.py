"""Driver selection by name, the way pyserial maps URL schemes to handler modules.

``create_reader`` is the one place that turns a ``[[readers]]`` entry into a
:class:`~agent.readers.base.Reader`. Drivers are imported only when chosen,
so a device with an RDM6300 never imports spidev or the ``mfrc522`` package.
"""

from __future__ import annotations

import importlib

from agent.clock import Clock
from agent.config import ReaderConfig
from agent.exceptions import ConfigError, ReaderError
from agent.readers.base import Reader

__all__ = ["DRIVERS", "create_reader", "driver_class"]

# driver name -> "module:Class"
DRIVERS: dict[str, str] = {
    "mfrc522": "agent.readers.mfrc522:Mfrc522Reader",
    "rdm6300": "agent.readers.rdm6300:Rdm6300Reader",
    "serial-line": "agent.readers.serial_line:SerialLineReader",
    "simulated": "agent.readers.simulated:SimulatedReader",
}


def driver_class(name: str, reader: str = "?") -> type[Reader]:
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
    cls: type[Reader] = getattr(module, attr)
    return cls


def create_reader(cfg: ReaderConfig, *, clock: Clock | None = None) -> Reader:
    cls = driver_class(cfg.driver, cfg.name)
    reader: Reader = cls.from_config(cfg, clock=clock)  # type: ignore[attr-defined]
    return reader
