"""``serial-line``: USB-serial readers that print one UID per line.

Cheap shop readers differ in what they print around the UID (``UID:
04A1B2C3``, ``04:A1:B2:C3``, a decimal number first...), so the line is
matched with ``pattern`` from config, whose first group is the UID in hex.
Readers that enumerate as a USB keyboard (HID) are not serial and are not
supported. A reader that repeats the line while the card stays gives one
read per presentation, like the RDM6300.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from agent.clock import Clock
from agent.exceptions import ConfigError
from agent.readers.framing import LineFramer
from agent.readers.serial_port import Framer, SerialConfig, SerialPortReader

__all__ = ["SerialLineConfig", "SerialLineReader"]


@dataclass(frozen=True)
class SerialLineConfig(SerialConfig):
    driver: str = field(default="serial-line", init=False)
    pattern: str = field(
        default=r"([0-9A-Fa-f]{8,20})",
        metadata={"comment": "regular expression; its first group is the UID in hex"},
    )


class SerialLineReader(SerialPortReader[SerialLineConfig]):
    driver = "serial-line"
    config_class = SerialLineConfig

    def __init__(self, name: str, port: str, *, pattern: str, **kwargs: Any) -> None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                f"reader {name!r}: pattern {pattern!r} is not a regular expression: {exc}"
            ) from exc
        super().__init__(name, port, **kwargs)
        self.pattern = pattern

    @classmethod
    def from_config(
        cls, config: SerialLineConfig, *, clock: Clock | None = None, **inject: Any
    ) -> SerialLineReader:
        return cls(
            config.name,
            config.port,
            pattern=config.pattern,
            baudrate=config.baudrate,
            clock=clock,
            allow_network_port=config.allow_network_port,
            **inject,
        )

    def make_framer(self) -> Framer:
        return LineFramer(self.pattern)
