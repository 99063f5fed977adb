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
from typing import Any

from agent.clock import Clock
from agent.config import ReaderConfig
from agent.exceptions import ConfigError
from agent.readers.framing import LineFramer
from agent.readers.serial_port import Framer, SerialPortReader

__all__ = ["SerialLineReader"]


class SerialLineReader(SerialPortReader):
    driver = "serial-line"

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
        cls, cfg: ReaderConfig, *, clock: Clock | None = None, **kwargs: Any
    ) -> SerialLineReader:
        return cls(
            cfg.name, cfg.port, pattern=cfg.pattern, baudrate=cfg.baudrate, clock=clock, **kwargs
        )

    def make_framer(self) -> Framer:
        return LineFramer(self.pattern)
