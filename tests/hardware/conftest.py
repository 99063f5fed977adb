"""Hardware tests: the real mfrc522 package over fake spidev/RPi.GPIO modules.

The fakes go into sys.modules here, at collection, before anything imports
``mfrc522``; each test gets a fresh emulated board on SPI 0.0 with its reset
line on GPIO25, and a manual clock that the reader's sleeps advance.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.hardware.fakes import install

install()

from agent.clock import ManualClock  # noqa: E402
from agent.config import ReaderConfig  # noqa: E402
from agent.events import BadgeRead, ReaderStatus  # noqa: E402
from agent.readers.mfrc522 import Mfrc522Reader  # noqa: E402
from tests.hardware.fakes.RPi import GPIO  # noqa: E402
from tests.hardware.mfrc522_emu import EmulatedBoard  # noqa: E402


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def board(clock: ManualClock) -> Iterator[EmulatedBoard]:
    GPIO.reset()
    emulated = EmulatedBoard(now=clock.monotonic, reset_pin=25)
    yield emulated
    emulated.close()
    GPIO.reset()


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
        settings: dict[str, Any] = {"name": "entrance", "driver": "mfrc522"}
        settings.update(overrides)
        cfg = ReaderConfig(**settings)
        return Mfrc522Reader.from_config(cfg, clock=scenario.clock, sleep=scenario.sleep)

    return make
