"""The reader-driver contract, run for every registered driver with its fake.

Each driver in :data:`agent.readers.registry.DRIVERS` must have an entry in
:data:`FAKES` (a driver registered without one fails here). Its fake is the
bus the driver takes as an argument: the MFRC522 register bus on the
emulated chip, a fake serial line behind the serial drivers' port opener, a
socket for the simulated reader. Through the registry, from a ``[[readers]]``
table, each reader must:

* start on a broken bus, report one ``fault``, and ``recovered`` once the bus
  is repaired;
* read cards with their true UID, one ``badge`` per presentation, at every
  UID size the hardware carries: 4, 7 and 10 bytes for the MFRC522
  (ISO 14443-3 A), serial-line and simulated; the RDM6300 reads EM4100 cards,
  which carry 5-byte IDs only, so it is held to 5 (and every fake to 5 where
  the hardware can);
* stop when told, and release its bus on ``close``.

Faults in the middle of a run are each driver's own tests (test_mfrc522_*,
test_serial_pty).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from agent.config import config_from_dict
from agent.hardware.events import BadgeRead, ReaderStatus
from agent.readers import registry
from agent.readers.base import Reader, Requirements
from agent.readers.framing import em4100_frame
from agent.readers.mfrc522_health import ChipHealth
from agent.readers.simulated import SimulatedReader, tap
from tests.hardware.helpers import WAIT_S, Running
from tests.hardware.mfrc522_emu import EmulatedBoard, EmulatedCard
from tests.hardware.serial_fake import FakeSerialLine

UIDS = {
    4: "5AC3E0F1",
    5: "0A1B2C3D4E",
    7: "04A2245A6B2D80",
    10: "04A1B2C3D4E5F60718FF",
}
AFTER_RECOVERY = {4: "11223344", 5: "3300000001", 7: "04112233445566", 10: "04010203040506070809"}


class DriverFake(ABC):
    """A driver's bus, which a test can break, repair and put cards on."""

    uid_sizes: tuple[int, ...]

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """The driver's keys of the ``[[readers]]`` table."""

    def inject(self) -> dict[str, Any]:
        """Constructor arguments: the fake bus, short retry delays."""
        return {}

    def ready(self, reader: Reader[Any]) -> None:  # noqa: B027 - most fakes need no wait
        """Wait until the reader can see a card."""

    @abstractmethod
    def present(self, uid: str) -> None: ...

    @abstractmethod
    def take_away(self, uid: str) -> None: ...

    @abstractmethod
    def break_bus(self) -> None: ...

    @abstractmethod
    def repair_bus(self) -> None: ...

    @abstractmethod
    def released(self) -> bool:
        """Whether the reader let go of the bus."""


class Mfrc522Fake(DriverFake):
    uid_sizes = (4, 7, 10)

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.board = EmulatedBoard(now=time.monotonic)
        self.cards: dict[str, EmulatedCard] = {}

    def settings(self) -> dict[str, Any]:
        return {"poll_ms": 10}

    def inject(self) -> dict[str, Any]:
        health = ChipHealth(retry_initial_s=0.02, retry_max_s=0.1)
        return {"open_bus": self.board.open_bus, "health": health}

    def present(self, uid: str) -> None:
        self.cards[uid] = self.board.chip.add_card(uid)

    def take_away(self, uid: str) -> None:
        self.board.chip.remove_card(self.cards.pop(uid))

    def break_bus(self) -> None:
        self.board.chip.io_error = OSError(5, "Input/output error")

    def repair_bus(self) -> None:
        self.board.chip.io_error = None

    def released(self) -> bool:
        return bool(self.board.opened) and all(bus.closed for bus in self.board.opened)


class SerialFake(DriverFake):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.line = FakeSerialLine("/dev/ttyFAKE0")

    def settings(self) -> dict[str, Any]:
        return {"port": self.line.path}

    def inject(self) -> dict[str, Any]:
        return {
            "opener": self.line.open,
            "retry_initial_s": 0.02,
            "retry_max_s": 0.1,
            "settle_s": 0.05,
        }

    def take_away(self, uid: str) -> None:
        pass  # a serial reader says nothing when the card leaves

    def break_bus(self) -> None:
        self.line.unplug()

    def repair_bus(self) -> None:
        self.line.replug()

    def released(self) -> bool:
        return bool(self.line.ports) and not self.line.open_ports


class Rdm6300Fake(SerialFake):
    uid_sizes = (5,)  # EM4100 cards carry 5-byte IDs, nothing else

    def present(self, uid: str) -> None:
        for _ in range(3):  # the module repeats the frame while the card stays
            self.line.send(em4100_frame(uid))


class SerialLineFake(SerialFake):
    uid_sizes = (4, 5, 7, 10)

    def present(self, uid: str) -> None:
        for _ in range(3):
            self.line.send(f"UID: {uid}\r\n".encode())


class SimulatedFake(DriverFake):
    uid_sizes = (4, 5, 7, 10)

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.socket = workdir / "sim.sock"

    def settings(self) -> dict[str, Any]:
        return {"socket": str(self.socket)}

    def inject(self) -> dict[str, Any]:
        return {"retry_initial_s": 0.02, "retry_max_s": 0.1}

    def ready(self, reader: Reader[Any]) -> None:
        assert isinstance(reader, SimulatedReader) and reader.listening.wait(WAIT_S)

    def present(self, uid: str) -> None:
        tap(self.socket, uid)

    def take_away(self, uid: str) -> None:
        pass  # every line is a tap

    def break_bus(self) -> None:
        self.socket.write_text("a file where the socket belongs")  # the reader never removes it

    def repair_bus(self) -> None:
        self.socket.unlink()

    def released(self) -> bool:
        return not os.path.lexists(self.socket)


# Every registered driver, with its fake. A new driver needs one here.
FAKES: dict[str, type[DriverFake]] = {
    "mfrc522": Mfrc522Fake,
    "rdm6300": Rdm6300Fake,
    "serial-line": SerialLineFake,
    "simulated": SimulatedFake,
}


@pytest.fixture
def workdir() -> Iterator[Path]:
    # AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="qdrv"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_every_registered_driver_has_a_fake() -> None:
    assert set(FAKES) == set(registry.DRIVERS)


def test_drivers_agree_on_the_type_of_a_shared_key() -> None:
    # ``config set`` resolves a [[readers]] key against every driver's keys at once.
    seen: dict[str, Any] = {}
    for name in registry.DRIVERS:
        cls = registry.config_class(name)
        hints = get_type_hints(cls)
        for f in fields(cls):
            if f.name != "driver":
                assert seen.setdefault(f.name, hints[f.name]) == hints[f.name], (name, f.name)


def _wait_status(run: Running, state: str) -> ReaderStatus:
    events = run.wait_for(lambda e: isinstance(e, ReaderStatus) and e.state == state)
    assert not any(isinstance(e, BadgeRead) for e in events)
    status: ReaderStatus = events[-1]
    return status


@pytest.mark.parametrize("driver", sorted(registry.DRIVERS))
def test_driver_contract(driver: str, workdir: Path) -> None:
    fake = FAKES[driver](workdir)
    table = {"name": "gate", "driver": driver, **fake.settings()}
    (config,) = config_from_dict({"readers": [table]}).readers
    reader = registry.create_reader(config, **fake.inject())
    assert reader.driver == driver and isinstance(config, type(reader).config_class)
    assert isinstance(registry.requirements(config), Requirements)
    assert set(fake.uid_sizes) >= ({5} if driver == "rdm6300" else {4, 7, 10})

    fake.break_bus()
    with Running(reader) as run:
        fault = _wait_status(run, "fault")
        assert fault.reader == "gate" and fault.detail
        fake.repair_bus()
        _wait_status(run, "recovered")
        fake.ready(reader)
        for size in fake.uid_sizes:
            for uid in (UIDS[size], AFTER_RECOVERY[size]):
                fake.present(uid)
                assert run.next() == BadgeRead("gate", driver, uid, size)
                fake.take_away(uid)
        time.sleep(0.1)  # repeats of the last card would arrive by now
        assert run.events.empty(), "one badge per presentation"
    reader.close()
    reader.close()  # closing twice is harmless
    assert fake.released()
