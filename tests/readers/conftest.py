"""Reader tests: the MFRC522 driver on the register-level emulator, on a manual clock.

Each test gets a fresh emulated board on SPI 0.0 with its reset line on
GPIO25, which the driver opens through its ``open_bus`` argument, and a
manual clock that the reader's sleeps advance. The real ``mfrc522`` package
over fake spidev/RPi.GPIO is test_mfrc522_package.py's alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent.clock import ManualClock
from agent.hardware.events import BadgeRead, ReaderStatus
from agent.readers.mfrc522 import Mfrc522Config, Mfrc522Reader
from tests.hardware.mfrc522_emu import EmulatedBoard


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def board(clock: ManualClock) -> Iterator[EmulatedBoard]:
    emulated = EmulatedBoard(now=clock.monotonic, reset_pin=25)
    yield emulated
    emulated.close()


class Scenario:
    """Runs a reader on the manual clock: its sleeps advance time and fire actions."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.start = clock.monotonic()
        self.stop = threading.Event()
        self.events: list[tuple[float, BadgeRead | ReaderStatus]] = []
        self.sleeps = 0
        self._actions: list[tuple[float, Callable[[], object]]] = []
        self._end = float("inf")

    def now(self) -> float:
        return self.clock.monotonic() - self.start

    def at(self, seconds: float, action: Callable[[], object]) -> None:
        self._actions.append((seconds, action))
        self._actions.sort(key=lambda item: item[0])

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.clock.advance(seconds)
        while self._actions and self._actions[0][0] <= self.now():
            self._actions.pop(0)[1]()
        if self.now() >= self._end:
            self.stop.set()

    def emit(self, event: BadgeRead | ReaderStatus) -> None:
        self.events.append((self.now(), event))

    def run(self, reader: Mfrc522Reader, until: float) -> None:
        """Run ``reader`` until ``until`` seconds of scenario time have passed."""
        self._end = until
        self.stop.clear()
        reader.run(self.emit, self.stop)

    def reads(self) -> list[str]:
        return [event.uid for _, event in self.events if isinstance(event, BadgeRead)]

    def statuses(self) -> list[tuple[float, ReaderStatus]]:
        return [(t, e) for t, e in self.events if isinstance(e, ReaderStatus)]


@pytest.fixture
def scenario(clock: ManualClock) -> Scenario:
    return Scenario(clock)


@pytest.fixture
def make_reader(scenario: Scenario, board: EmulatedBoard) -> Callable[..., Mfrc522Reader]:
    def make(**overrides: Any) -> Mfrc522Reader:
        settings: dict[str, Any] = {"name": "entrance"}
        settings.update(overrides)
        cfg = Mfrc522Config(**settings)
        return Mfrc522Reader.from_config(
            cfg, clock=scenario.clock, sleep=scenario.sleep, open_bus=board.open_bus
        )

    return make
