"""The mfrc522 driver against the register-level emulator, through its register bus."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agent.exceptions import ReaderError
from agent.hardware.events import BadgeRead, ReaderStatus
from agent.readers.iso14443 import Activated, NotActivated
from agent.readers.mfrc522 import Mfrc522Config, Mfrc522Reader
from agent.readers.mfrc522_health import ChipHealth
from tests.hardware.mfrc522_emu import EmulatedBoard, EmulatedCard
from tests.readers.conftest import Scenario

MakeReader = Callable[..., Mfrc522Reader]

UIDS = {
    4: "5AC3E0F1",
    7: "04A2245A6B2D80",
    10: "04A1B2C3D4E5F60718FF",
}


@pytest.mark.parametrize("size", [4, 7, 10])
def test_cards_read_with_their_true_uid(
    size: int, board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    card = board.chip.add_card(UIDS[size])
    scenario.run(make_reader(), until=1.0)
    assert scenario.events[0][1] == BadgeRead("entrance", "mfrc522", UIDS[size], size)
    assert scenario.reads() == [UIDS[size]]
    assert card.selected >= 5  # seen at every poll, reported once


def test_two_seven_byte_cards_sharing_three_bytes_are_told_apart(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    first, second = "04A224112233AA", "04A22499887766"
    chip = board.chip
    one = chip.add_card(first)
    scenario.at(1.0, lambda: chip.remove_card(one))
    scenario.at(4.0, lambda: chip.add_card(second))
    scenario.run(make_reader(), until=5.0)
    assert scenario.reads() == [first, second]


def test_two_such_cards_in_the_field_at_once_are_read_one_after_the_other(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    chip = board.chip
    one = chip.add_card("04A224112233AA")
    two = chip.add_card("04A22499887766")
    scenario.run(make_reader(), until=2.0)
    reads = scenario.reads()
    assert len(reads) == 1 and reads[0] in (one.uid_hex, two.uid_hex)
    winner = one if reads[0] == one.uid_hex else two
    chip.remove_card(winner)
    scenario.run(make_reader(), until=4.0)
    assert sorted(scenario.reads()) == sorted([one.uid_hex, two.uid_hex])


def test_a_card_left_on_the_reader_for_ten_seconds_is_one_read(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    card = board.chip.add_card(UIDS[7])
    scenario.run(make_reader(poll_ms=100), until=10.0)
    assert scenario.reads() == [UIDS[7]]
    assert card.selected >= 90  # it really was activated at (nearly) every poll
    assert scenario.now() == pytest.approx(10.0, abs=0.2)


def test_a_card_that_left_and_came_back_counts_again(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    chip = board.chip
    card = EmulatedCard(UIDS[4])
    chip.add_card(card)
    scenario.at(1.0, lambda: chip.remove_card(card))
    scenario.at(1.2, lambda: chip.add_card(card))  # 2 polls away, within the window
    scenario.at(2.0, lambda: chip.remove_card(card))
    scenario.at(5.0, lambda: chip.add_card(card))  # long gone: a new presentation
    scenario.run(make_reader(absent_polls=3, repeat_window_ms=2000), until=6.0)
    times = [t for t, e in scenario.events if isinstance(e, BadgeRead)]
    assert scenario.reads() == [UIDS[4], UIDS[4]]
    assert times[0] < 0.5 and 5.0 <= times[1] < 5.5


def test_an_idle_poll_takes_at_most_twenty_spi_transfers(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    reader = make_reader()
    scenario.run(reader, until=0.01)  # opened and initialised
    chip = board.chip
    before = chip.transfers
    assert reader.poll() == NotActivated("no card", card_answered=False)
    assert chip.transfers - before <= 20
    before, start = chip.transfers, scenario.now()
    scenario.run(reader, until=start + 5.0)
    polls = round((scenario.now() - start) / reader.poll_s)
    assert polls >= 40
    assert (chip.transfers - before) / polls <= 20


@pytest.mark.parametrize("silent", [0x00, 0xFF])
def test_a_chip_that_stops_answering_is_faulted_and_recovered(
    silent: int, board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    chip = board.chip
    scenario.at(2.0, lambda: chip.stop_answering(silent))
    scenario.at(6.0, chip.resume)
    scenario.at(9.0, lambda: chip.add_card(UIDS[4]))
    scenario.run(make_reader(), until=10.0)
    statuses = scenario.statuses()
    assert [s.state for _, s in statuses] == ["fault", "recovered"]
    (fault_at, fault), (recovered_at, recovered) = statuses
    assert 2.0 <= fault_at < 3.0  # three failed polls, not a 30 s version check
    assert "chip errors in a row" in fault.detail
    assert recovered_at >= 6.0
    assert "VersionReg 0x92" in recovered.detail
    assert scenario.reads() == [UIDS[4]]


@pytest.mark.parametrize("errors", [0x01, 0x02, 0x04])  # ProtocolErr, ParityErr, CRCErr
def test_radio_errors_cost_reads_but_are_not_chip_faults(
    errors: int, board: EmulatedBoard, scenario: Scenario
) -> None:
    # max_errors=1: a single exchange counted as a chip error would be a fault
    health = ChipHealth(max_errors=1)
    reader = Mfrc522Reader(
        "entrance",
        clock=scenario.clock,
        sleep=scenario.sleep,
        health=health,
        open_bus=board.open_bus,
    )
    chip = board.chip
    chip.radio_errors = errors  # a card at the edge of the field
    chip.add_card(UIDS[7])

    def clear() -> None:
        chip.radio_errors = 0

    scenario.at(3.0, clear)
    scenario.run(reader, until=4.0)
    assert scenario.statuses() == []
    times = [t for t, e in scenario.events if isinstance(e, BadgeRead)]
    assert scenario.reads() == [UIDS[7]] and times[0] >= 3.0


def test_a_version_change_is_a_fault_found_by_the_periodic_check(
    board: EmulatedBoard, scenario: Scenario
) -> None:
    reader = Mfrc522Reader(
        "entrance",
        clock=scenario.clock,
        sleep=scenario.sleep,
        health=ChipHealth(check_interval_s=5.0),
        open_bus=board.open_bus,
    )
    chip = board.chip

    def swap() -> None:
        chip.version = 0x12

    scenario.at(2.0, swap)
    scenario.run(reader, until=8.0)
    statuses = scenario.statuses()
    assert [s.state for _, s in statuses] == ["fault", "recovered"]
    assert 5.0 <= statuses[0][0] < 5.5
    assert statuses[0][1].detail == "VersionReg changed from 0x92 to 0x12"
    assert "accepted in place of 0x92" in statuses[1][1].detail


def test_a_brownout_that_resets_the_registers_is_caught_by_the_timer_check(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    chip = board.chip
    scenario.at(1.0, chip.brownout)  # TAuto is gone: the timer never fires
    scenario.at(3.0, lambda: chip.add_card(UIDS[10]))
    scenario.run(make_reader(), until=4.0)
    assert [s.state for _, s in scenario.statuses()] == ["fault", "recovered"]
    assert scenario.reads() == [UIDS[10]]


def test_bus_errors_become_reader_errors_and_never_leave_run(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    chip = board.chip

    def unplug() -> None:
        chip.io_error = OSError(5, "Input/output error")

    def replug() -> None:
        chip.io_error = None

    scenario.at(1.0, unplug)
    scenario.at(3.0, replug)
    reader = make_reader()
    scenario.run(reader, until=5.0)
    statuses = scenario.statuses()
    assert [s.state for _, s in statuses] == ["fault", "recovered"]
    assert "Input/output error" in statuses[0][1].detail
    with pytest.raises(ReaderError) as caught:
        chip.io_error = OSError(5, "Input/output error")
        reader.probe()
    assert isinstance(caught.value.__cause__, OSError)


def test_probe_names_the_version(board: EmulatedBoard, make_reader: MakeReader) -> None:
    reader = make_reader()
    assert reader.probe() == (
        "reader entrance: MFRC522 on SPI 0.0, VersionReg 0x92 (NXP MFRC522 v2.0)"
    )
    board.chip.stop_answering(0x00)
    with pytest.raises(ReaderError, match=r"no MFRC522 answers on SPI 0\.0"):
        reader.probe()


def test_from_config_takes_the_driver_settings() -> None:
    cfg = Mfrc522Config(
        name="gate", spi_bus=1, spi_device=1, reset_pin=24,
        poll_ms=250, absent_polls=5, repeat_window_ms=3000,
    )  # fmt: skip
    reader = Mfrc522Reader.from_config(cfg)
    assert (reader.name, reader.driver) == ("gate", "mfrc522")
    assert (reader.spi_bus, reader.spi_device, reader.reset_pin) == (1, 1, 24)
    assert reader.poll_s == 0.25
    assert reader.presence.absent_polls == 5 and reader.presence.repeat_window_s == 3.0


def test_poll_returns_the_activation(board: EmulatedBoard, make_reader: MakeReader) -> None:
    reader = make_reader()
    reader.probe()
    board.chip.add_card(UIDS[10])
    result = reader.poll()
    assert isinstance(result, Activated)
    assert (result.uid_hex, result.sak) == (UIDS[10], 0x20)


def test_statuses_are_reader_status_events(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    board.chip.stop_answering(0x00)
    scenario.run(make_reader(), until=1.0)
    (_, status), *_ = scenario.statuses()
    assert isinstance(status, ReaderStatus)
    assert status.record_data()["state"] == "fault"
    assert status.reader == "entrance"
