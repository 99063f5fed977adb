"""RDM6300: 125 kHz EM4100 cards on a UART at 9600 baud.

The module prints ``STX, 10 ASCII hex, 2 ASCII hex XOR checksum, ETX`` and
repeats it while the card stays in the field; framing is sans-I/O
(:mod:`agent.readers.framing`), repeat suppression is
:mod:`agent.readers.presence`, the port handling is shared with
``serial-line`` (:mod:`agent.readers.serial_port`). The UID is the five data
bytes (10 hex digits, ``uid_len`` 5), never the checksum: EM4100 cards carry
no other size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.clock import Clock
from agent.readers.framing import Em4100Framer
from agent.readers.serial_port import Framer, SerialConfig, SerialPortReader

__all__ = ["Rdm6300Config", "Rdm6300Reader"]


@dataclass(frozen=True)
class Rdm6300Config(SerialConfig):
    driver: str = field(default="rdm6300", init=False)


class Rdm6300Reader(SerialPortReader[Rdm6300Config]):
    driver = "rdm6300"
    config_class = Rdm6300Config

    @classmethod
    def from_config(
        cls, config: Rdm6300Config, *, clock: Clock | None = None, **inject: Any
    ) -> Rdm6300Reader:
        return cls(
            config.name,
            config.port,
            baudrate=config.baudrate,
            clock=clock,
            allow_network_port=config.allow_network_port,
            **inject,
        )

    def make_framer(self) -> Framer:
        return Em4100Framer()
