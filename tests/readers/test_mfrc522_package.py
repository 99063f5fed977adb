"""The real ``mfrc522`` package against the emulated chip, over fake spidev and RPi.GPIO.

The one place the fakes go into ``sys.modules`` (for each test, the package
imported afresh against them): the emulator must behave like the chip when
the package drives it, and the driver's real bus (:mod:`agent.readers.mfrc522_spi`,
the package's wiring) must open, number pins BCM, pulse the reset line and
find a missing ``/dev/spidevB.D`` as on a Pi. Every other reader test plugs
the emulator in through the driver's ``open_bus`` argument.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent.clock import ManualClock
from agent.exceptions import ReaderError
from agent.hardware.events import BadgeRead, ReaderStatus
from agent.readers.mfrc522 import Mfrc522Config, Mfrc522Reader
from tests.hardware.fakes import installed, spidev
from tests.hardware.fakes.RPi import GPIO
from tests.hardware.mfrc522_emu import EmulatedBoard
from tests.readers.conftest import Scenario
from tests.readers.test_mfrc522_reader import UIDS

MakeReader = Callable[..., Mfrc522Reader]


@pytest.fixture(autouse=True)
def fake_modules() -> Iterator[None]:
    with installed():
        GPIO.reset()
        yield
        GPIO.reset()


@pytest.fixture
def board(clock: ManualClock) -> Iterator[EmulatedBoard]:
    emulated = EmulatedBoard(now=clock.monotonic, reset_pin=25).plug_into_fakes()
    yield emulated
    emulated.close()


@pytest.fixture
def make_reader(scenario: Scenario, board: EmulatedBoard) -> MakeReader:
    """The driver on its default bus: the package over the fakes."""

    def make(**overrides: Any) -> Mfrc522Reader:
        cfg = Mfrc522Config(**{"name": "entrance", **overrides})
        return Mfrc522Reader.from_config(cfg, clock=scenario.clock, sleep=scenario.sleep)

    return make


@pytest.fixture
def device(board: EmulatedBoard) -> Any:
    from mfrc522 import MFRC522

    return MFRC522(pin_mode=GPIO.BCM, pin_rst=25)


def test_calc_crc_gives_crc_a(device: Any) -> None:
    assert device.CalulateCRC([0x50, 0x00]) == [0x57, 0xCD]
    assert device.CalulateCRC([0x12, 0x34]) == [0x26, 0xCF]


def test_the_package_selects_a_four_byte_card(board: EmulatedBoard, device: Any) -> None:
    card = board.chip.add_card("5AC3E0F1")
    assert device.MFRC522_Request(device.PICC_REQIDL) == (device.MI_OK, 16)
    status, uid = device.MFRC522_Anticoll()
    assert (status, uid) == (device.MI_OK, [0x5A, 0xC3, 0xE0, 0xF1, 0x5A ^ 0xC3 ^ 0xE0 ^ 0xF1])
    assert device.MFRC522_SelectTag(uid) == 0x08
    assert card.state == "ACTIVE"


def test_a_halted_card_answers_wupa_but_not_reqa(board: EmulatedBoard, device: Any) -> None:
    card = board.chip.add_card("5AC3E0F1")
    card.state = "HALT"
    assert device.MFRC522_Request(device.PICC_REQIDL)[0] == device.MI_ERR
    assert device.MFRC522_Request(device.PICC_REQALL) == (device.MI_OK, 16)
    assert card.state == "READY" and card.from_halt


def test_two_cards_collide_and_the_chip_says_where(board: EmulatedBoard, device: Any) -> None:
    board.chip.add_card("01020304")
    board.chip.add_card("01020305")
    device.Write_MFRC522(0x0E, 0x00)  # ValuesAfterColl = 0
    device.MFRC522_Request(device.PICC_REQIDL)
    status, _ = device.MFRC522_Anticoll()
    assert status == device.MI_ERR
    assert device.Read_MFRC522(0x06) & 0x08  # ErrorReg CollErr
    assert device.Read_MFRC522(0x0E) & 0x3F == 25  # CollPos: bit 25 (first bit of byte 3)


def test_a_soft_reset_drops_the_field_and_every_card_restarts(
    board: EmulatedBoard, device: Any
) -> None:
    card = board.chip.add_card("5AC3E0F1")
    card.state = "HALT"
    device.MFRC522_Reset()
    assert not board.chip.antenna_on and card.state == "IDLE"


def test_a_silent_chip_reads_what_the_bus_floats_to(board: EmulatedBoard, device: Any) -> None:
    board.chip.stop_answering(0xFF)
    assert device.Read_MFRC522(0x37) == 0xFF
    board.chip.resume()
    assert device.Read_MFRC522(0x37) == 0x92


def test_an_spi_device_that_is_not_there_fails_to_open() -> None:
    with pytest.raises(FileNotFoundError, match=r"spidev3\.0"):
        spidev.SpiDev().open(3, 0)


def test_the_package_alone_reads_the_cascade_tag_and_check_byte(board: EmulatedBoard) -> None:
    # What the issue describes, reproduced on the emulator: level 1 only.
    from mfrc522 import MFRC522

    board.chip.add_card(UIDS[7])
    device = MFRC522(pin_mode=GPIO.BCM, pin_rst=25)
    status, _ = device.MFRC522_Request(device.PICC_REQIDL)
    assert status == device.MI_OK
    status, uid = device.MFRC522_Anticoll()
    assert status == device.MI_OK
    assert uid == [0x88, 0x04, 0xA2, 0x24, 0x88 ^ 0x04 ^ 0xA2 ^ 0x24]


def test_the_packages_own_empty_request_spins_through_two_thousand_reads(
    board: EmulatedBoard,
) -> None:
    # The baseline the benchmark compares with; a count, the same on any machine.
    from mfrc522 import MFRC522

    device = MFRC522(pin_mode=GPIO.BCM, pin_rst=25)
    before = board.chip.transfers
    status, _ = device.MFRC522_Request(device.PICC_REQIDL)
    assert status == device.MI_ERR
    assert board.chip.transfers - before > 2000


def test_a_latched_chip_gets_a_pulse_on_the_reset_pin(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    chip = board.chip
    scenario.at(1.0, lambda: chip.stop_answering(0xFF, until_reset=True))
    scenario.run(make_reader(reset_pin=25), until=5.0)
    assert [s.state for _, s in scenario.statuses()] == ["fault", "recovered"]
    assert chip.resets == 1
    pulse = [level for pin, level in GPIO.history if pin == 25]
    assert pulse[-2:] == [0, 1]


def test_a_missing_spi_device_is_a_fault_until_it_appears(scenario: Scenario) -> None:
    GPIO.reset()
    reader = Mfrc522Reader("side", spi_bus=1, clock=scenario.clock, sleep=scenario.sleep)
    boards: list[EmulatedBoard] = []

    def plug() -> None:
        boards.append(EmulatedBoard(now=scenario.clock.monotonic, bus=1).plug_into_fakes())

    scenario.at(3.0, plug)
    try:
        scenario.run(reader, until=20.0)
    finally:
        for b in boards:
            b.close()
        GPIO.reset()
    statuses = scenario.statuses()
    assert [s.state for _, s in statuses] == ["fault", "recovered"]
    assert "/dev/spidev1.0" in statuses[0][1].detail
    assert statuses[1][0] >= 3.0


def test_the_package_is_built_with_bcm_numbering_and_the_configured_reset_pin(
    board: EmulatedBoard, make_reader: MakeReader
) -> None:
    make_reader(reset_pin=25).probe()
    assert GPIO.getmode() == GPIO.BCM
    assert (25, 1) in GPIO.history and all(pin == 25 for pin, _ in GPIO.history)


def test_board_numbering_set_elsewhere_is_refused(
    board: EmulatedBoard, make_reader: MakeReader
) -> None:
    GPIO.setmode(GPIO.BOARD)
    with pytest.raises(ReaderError, match="BOARD"):
        make_reader().probe()


def test_without_a_reset_pin_no_gpio_is_touched(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    board.chip.add_card(UIDS[4])
    reader = make_reader(reset_pin=None)
    scenario.run(reader, until=0.5)
    reader.close()
    assert scenario.reads() == [UIDS[4]]
    assert GPIO.history == [] and GPIO.getmode() is None


def test_the_registry_builds_it_and_it_reads_in_real_time_in_its_own_thread() -> None:
    # Real clock, real sleeps, the daemon's way of running a reader: a thread.
    import threading
    import time

    from agent.readers.registry import create_reader

    GPIO.reset()
    board = EmulatedBoard(now=time.monotonic).plug_into_fakes()
    try:
        reader = create_reader(Mfrc522Config(name="gate", poll_ms=20))
        assert isinstance(reader, Mfrc522Reader)
        seen: list[BadgeRead | ReaderStatus] = []
        got = threading.Event()

        def emit(event: BadgeRead | ReaderStatus) -> None:
            seen.append(event)
            got.set()

        stop = threading.Event()
        thread = threading.Thread(target=reader.run, args=(emit, stop), daemon=True)
        thread.start()
        board.chip.add_card(UIDS[7])
        assert got.wait(timeout=10)
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()
        reader.close()
        assert seen == [BadgeRead("gate", "mfrc522", UIDS[7], 7)]
    finally:
        board.close()
        GPIO.reset()
