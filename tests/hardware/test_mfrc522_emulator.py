"""The emulator itself, driven through the real package: it must behave like the chip."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hardware.fakes import spidev
from tests.hardware.fakes.RPi import GPIO
from tests.hardware.mfrc522_emu import EmulatedBoard


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
