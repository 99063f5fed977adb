"""Stand-in for the ``spidev`` extension: each SpiDev talks to an attached target.

Only what drivers use: ``open``, ``close``, ``xfer``, ``xfer2``, ``writebytes``,
``readbytes`` and the ``max_speed_hz``/``mode`` attributes. A bus/device with
nothing attached fails to open like a missing ``/dev/spidevB.D``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class SpiTarget(Protocol):
    def transfer(self, data: list[int], speed_hz: int) -> list[int]: ...


_TARGETS: dict[tuple[int, int], SpiTarget] = {}


def attach(bus: int, device: int, target: SpiTarget) -> None:
    _TARGETS[(bus, device)] = target


def detach(bus: int, device: int) -> None:
    _TARGETS.pop((bus, device), None)


class SpiDev:
    def __init__(self, bus: int | None = None, device: int | None = None) -> None:
        self.max_speed_hz = 125_000_000
        self.mode = 0
        self.bits_per_word = 8
        self._target: SpiTarget | None = None
        if bus is not None and device is not None:
            self.open(bus, device)

    def open(self, bus: int, device: int) -> None:
        target = _TARGETS.get((bus, device))
        if target is None:
            raise FileNotFoundError(2, f"No such file or directory: '/dev/spidev{bus}.{device}'")
        self._target = target

    def close(self) -> None:
        self._target = None

    def xfer(self, values: Sequence[int], speed_hz: int = 0, *_: int) -> list[int]:
        return self._transfer(values, speed_hz)

    def xfer2(self, values: Sequence[int], speed_hz: int = 0, *_: int) -> list[int]:
        return self._transfer(values, speed_hz)

    def writebytes(self, values: Sequence[int]) -> None:
        self._transfer(values, 0)

    def readbytes(self, count: int) -> list[int]:
        return self._transfer([0] * count, 0)

    def _transfer(self, values: Sequence[int], speed_hz: int) -> list[int]:
        if self._target is None:
            raise OSError(9, "Bad file descriptor")
        data = [int(v) for v in values]
        if any(not 0 <= v <= 0xFF for v in data):
            raise OverflowError("Byte value out of range")
        return self._target.transfer(data, speed_hz or self.max_speed_hz)
