"""SUN cards through the mfrc522 driver: the real package, the emulated chip and card.

The driver runs on its default bus (agent/readers/mfrc522_spi.py: the ``mfrc522``
package over the fake spidev and RPi.GPIO of tests/hardware/fakes, wired to the
register-level emulator). In the field: an NTAG 424 DNA personalised by the station's
code (tests/hardware/sun_cards.py) behind the ISO 14443-4 card emulator, or cards that
must be read by UID as before. Every SUN message the driver records is checked with
the card's keys, so a read that merely looks right fails these tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent.clock import ManualClock
from agent.hardware.events import BadgeRead
from agent.protocol.ntag424 import KIND, check_sun, sun_from_card_field
from agent.readers.mfrc522 import Mfrc522Config, Mfrc522Reader
from tests.hardware.fakes import installed
from tests.hardware.fakes.RPi import GPIO
from tests.hardware.isodep_emu import IsoDepCard, StaticType4App
from tests.hardware.mfrc522_emu import EmulatedBoard, EmulatedCard
from tests.hardware.sun_cards import SunCard, bundle_for, personalised_card
from tests.readers.conftest import Scenario

UID = bytes.fromhex("04DE5F1EACC040")
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
    def make(**overrides: Any) -> Mfrc522Reader:
        cfg = Mfrc522Config(**{"name": "entrance", **overrides})
        return Mfrc522Reader.from_config(cfg, clock=scenario.clock, sleep=scenario.sleep)

    return make


def badge_reads(scenario: Scenario) -> list[tuple[float, BadgeRead]]:
    return [(t, e) for t, e in scenario.events if isinstance(e, BadgeRead)]


def counter_of(sun: SunCard, read: BadgeRead) -> int:
    """The read counter of the SUN message in ``read``; fails unless the message checks."""
    message = sun_from_card_field(read.card)
    assert message is not None, read
    check = check_sun(sun.bundle.meta_read, sun.bundle.file_read, sun.app.uid, message)
    assert check.authentic and check.counter is not None, check
    return check.counter


def test_a_personalised_card_is_read_with_its_sun_message_once_per_presentation(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    sun = personalised_card(UID, bundle_for(1))
    scenario.at(0.05, lambda: board.chip.add_card(sun.card))
    scenario.at(1.5, lambda: board.chip.remove_card(sun.card))
    scenario.at(5.0, lambda: board.chip.add_card(sun.card))  # a second tap, later
    scenario.run(make_reader(), until=6.5)
    reads = badge_reads(scenario)
    assert [r.uid for _, r in reads] == [UID.hex().upper()] * 2
    assert all(r.card is not None and r.card["kind"] == KIND for _, r in reads)
    # Each presentation is one SUN read: the card resting on the reader for over a
    # second (a dozen polls) does not move its counter again.
    assert [counter_of(sun, r) for _, r in reads] == [sun.counter + 1, sun.counter + 2]
    assert sun.app.read_counter == sun.counter + 2
    # Tap to read: the next poll (100 ms) plus the ISO-DEP session, in chip time.
    assert reads[0][0] - 0.05 < 0.1 + 0.03
    # Every frame fitted the chip's 64-byte FIFO, ours announced as FSD 64.
    assert sun.card.received[0] == b"\xe0\x50"  # RATS, FSDI 5: 64 bytes
    assert all(len(block) + 2 <= 64 for block in sun.card.received)
    assert not scenario.statuses()


def test_a_uid_only_card_is_read_as_before_and_never_sent_rats(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    card = board.chip.add_card(EmulatedCard(UID))  # a 7-byte NTAG 21x: SAK 0x00
    scenario.run(make_reader(), until=0.5)
    assert [(r.uid, r.uid_len, r.card) for _, r in badge_reads(scenario)] == [
        (UID.hex().upper(), 7, None)
    ]
    assert card.state == "HALT"


def test_a_clone_of_a_sun_card_s_uid_reads_by_uid_only(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    # A "magic" card with the UID written on: it may even claim ISO 14443-4, but
    # it has no keys and so no SUN message of its own.
    board.chip.add_card(IsoDepCard(UID, app=StaticType4App(b"\x00\x00")))
    scenario.run(make_reader(), until=0.5)
    assert [(r.uid, r.card) for _, r in badge_reads(scenario)] == [(UID.hex().upper(), None)]


@pytest.mark.parametrize(
    "card",
    [
        IsoDepCard(UID, app=StaticType4App(b"", with_ndef_app=False)),  # a transport card
        IsoDepCard(UID, app=StaticType4App(b"", with_ndef_app=True)),  # NDEF app, no file
        IsoDepCard(UID, app=StaticType4App(b""), answers_rats=False),  # claims 14443-4
    ],
    ids=["no-ndef-application", "empty-ndef-file", "no-answer-to-rats"],
)
def test_an_iso_dep_card_without_sun_reads_by_uid(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader, card: IsoDepCard
) -> None:
    board.chip.add_card(card)
    scenario.run(make_reader(), until=1.0)
    assert [(r.uid, r.card) for _, r in badge_reads(scenario)] == [(UID.hex().upper(), None)]
    assert not scenario.statuses()


def test_a_card_removed_mid_read_still_gives_its_uid_read(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    # Frame 3 is the SELECT of the NDEF file: the card leaves the field there.
    sun = personalised_card(UID, bundle_for(2), faults={3: "leave"})
    board.chip.add_card(sun.card)
    scenario.run(make_reader(), until=1.0)
    assert [(r.uid, r.card) for _, r in badge_reads(scenario)] == [(UID.hex().upper(), None)]
    assert not scenario.statuses()  # the card's doing, not the chip's
    sun.card.present = True  # it comes back, after the repeat window: a new, full read
    scenario.run(make_reader(), until=4.0)
    reads = badge_reads(scenario)
    assert len(reads) == 2 and reads[1][1].card is not None


@pytest.mark.parametrize("fault", ["lose", "drop", "corrupt", "oversize"])
def test_a_frame_lost_garbled_or_too_long_for_the_fifo_is_recovered(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader, fault: str
) -> None:
    sun = personalised_card(UID, bundle_for(3), faults={4: fault})
    board.chip.add_card(sun.card)
    scenario.run(make_reader(), until=0.5)
    (read,) = [r for _, r in badge_reads(scenario)]
    assert counter_of(sun, read) == sun.counter + 1
    naks = [b for b in sun.card.received if b[0] & 0xF6 == 0xB2]
    assert naks  # the driver asked again (R(NAK)), as ISO 14443-4 wants
    assert not scenario.statuses()


def test_a_session_broken_beyond_the_block_retries_is_tried_again_after_an_rf_reset(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    sun = personalised_card(UID, bundle_for(4), faults={3: "lose", 4: "lose", 5: "lose"})
    board.chip.add_card(sun.card)
    scenario.run(make_reader(), until=0.5)
    (read,) = [r for _, r in badge_reads(scenario)]
    assert counter_of(sun, read) == sun.counter + 1
    assert sun.card.received.count(b"\xe0\x50") == 2  # RATS, twice


def test_a_sun_card_and_a_uid_card_together_are_both_read(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    sun = personalised_card(UID, bundle_for(5))
    other = EmulatedCard("5AC3E0F1")
    board.chip.add_card(sun.card)
    board.chip.add_card(other)
    scenario.at(1.0, lambda: board.chip.remove_card(other))  # the anticollision's winner
    scenario.run(make_reader(), until=2.0)
    reads = {r.uid: r for _, r in badge_reads(scenario)}
    assert set(reads) == {UID.hex().upper(), "5AC3E0F1"}
    assert counter_of(sun, reads[UID.hex().upper()]) == sun.counter + 1
    assert reads["5AC3E0F1"].card is None


def test_a_card_asking_for_more_time_gets_it_within_the_door_s_cap(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    # FWI 4 (4.8 ms) and 20 ms per APDU: the card sends S(WTX) and the driver
    # waits the extended time, which stays under its 50 ms cap.
    sun = personalised_card(UID, bundle_for(6))
    slow = IsoDepCard(UID, app=sun.app, fwi=4, apdu_time_s=0.02)
    board.chip.add_card(slow)
    scenario.run(make_reader(), until=0.5)
    (read,) = [r for _, r in badge_reads(scenario)]
    assert counter_of(sun, read) == sun.counter + 1
    assert slow.wtx_sent >= 4  # every APDU of the session


def test_a_card_that_stops_answering_after_its_ats_costs_a_bounded_wait(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    # Every frame after the first ATS is lost: three waits of the card's FWT for
    # the first SELECT, an RF reset, RATS twice unanswered, then the UID read.
    card = IsoDepCard(
        UID,
        app=personalised_card(UID, bundle_for(7)).app,
        faults=dict.fromkeys(range(1, 99), "lose"),
    )
    board.chip.add_card(card)
    scenario.run(make_reader(), until=1.0)
    reads = badge_reads(scenario)
    assert [(r.uid, r.card) for _, r in reads] == [(UID.hex().upper(), None)]
    assert reads[0][0] < 0.3  # 3 x 42 ms, 11 ms of RF reset, 2 x 8.5 ms for RATS
    assert not scenario.statuses()


class _PullsTheBus:
    """A card application whose first APDU coincides with the SPI bus failing."""

    def __init__(self, board: EmulatedBoard) -> None:
        self.board = board

    def apdu(self, command: bytes) -> bytes:
        self.board.chip.io_error = OSError(5, "Input/output error")
        return b"\x6a\x82"


def test_a_chip_failure_during_the_session_still_writes_the_uid_read_first(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    board.chip.add_card(IsoDepCard(UID, app=_PullsTheBus(board)))
    scenario.at(0.5, lambda: setattr(board.chip, "io_error", None))
    scenario.run(make_reader(), until=3.0)
    kinds = [type(e).__name__ for _, e in scenario.events]
    assert kinds[0] == "BadgeRead" and scenario.events[0][1].uid == UID.hex().upper()
    assert [s.state for _, s in scenario.statuses()] == ["fault", "recovered"]


def test_a_sun_read_moves_the_fifo_in_one_spi_transfer_each_way(
    board: EmulatedBoard, scenario: Scenario, make_reader: MakeReader
) -> None:
    reader = make_reader()
    reader.probe()
    counts = []
    for card in (EmulatedCard(UID), personalised_card(UID, bundle_for(8)).card):
        board.chip.add_card(card)
        before = board.chip.transfers
        reader._step(scenario.emit)
        counts.append(board.chip.transfers - before)
        board.chip.remove_card(card)
        reader.presence = type(reader.presence)(3, 2.0)  # the next card is a new presentation
    uid_read, sun_read = counts
    # A count, the same on any machine: byte by byte the FIFO would make it 310.
    assert uid_read <= 75 and sun_read <= 150, counts
    assert [r.card is not None for _, r in badge_reads(scenario)] == [False, True]
