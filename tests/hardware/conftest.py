"""Hardware tests: the real mfrc522 package over fake spidev/RPi.GPIO modules.

The fakes go into sys.modules here, at collection, before anything imports
``mfrc522``; each test gets a fresh emulated board on SPI 0.0 with its reset
line on GPIO25, and a manual clock that the reader's sleeps advance.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hardware.fakes import install

install()

from agent.clock import ManualClock  # noqa: E402
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
