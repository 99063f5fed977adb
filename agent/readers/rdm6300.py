"""RDM6300: 125 kHz EM4100 cards on a UART at 9600 baud.

The module prints ``STX, 10 ASCII hex, 2 ASCII hex XOR checksum, ETX`` and
repeats it while the card stays in the field; framing and repeat
suppression are sans-I/O (:mod:`agent.readers.framing`), the port handling
is shared with ``serial-line`` (:mod:`agent.readers.serial_port`). The UID
is the five data bytes (10 hex digits, ``uid_len`` 5), never the checksum.
"""

from __future__ import annotations

from typing import Any

from agent.clock import Clock
from agent.config import ReaderConfig
from agent.readers.framing import Em4100Framer
from agent.readers.serial_port import Framer, SerialPortReader

__all__ = ["Rdm6300Reader"]


class Rdm6300Reader(SerialPortReader):
    driver = "rdm6300"

    @classmethod
    def from_config(
        cls, cfg: ReaderConfig, *, clock: Clock | None = None, **kwargs: Any
    ) -> Rdm6300Reader:
        return cls(cfg.name, cfg.port, baudrate=cfg.baudrate, clock=clock, **kwargs)

    def make_framer(self) -> Framer:
        return Em4100Framer()
