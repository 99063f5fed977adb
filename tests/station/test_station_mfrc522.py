"""``qatysu station`` through its real reader: the MFRC522 over the ``mfrc522`` package.

The package runs over the fake spidev and RPi.GPIO of tests/hardware/fakes, wired to
the register-level chip emulator; in its field a blank NTAG 424 DNA
(tests/hardware/ntag424_emu.py) behind the ISO 14443-4 card emulator; the portal is
the real one under uvicorn (tests/station/conftest.py). What must hold: the station
turns the blank card into a Qatysu card over ISO-DEP, every frame within the chip's
FIFO (chained both ways where an APDU or answer is longer); the portal's keys check
its next SUN message and the door's driver then reads it with a verified ``card``
field; a card taken away mid-way is finished by the next run; no card, a card
without ISO-DEP and a card that is not blank are each one line and exit 1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.hardware.events import BadgeRead, ReaderStatus
from agent.protocol.ntag424 import check_sun, sun_from_card_field
from agent.readers.mfrc522 import Mfrc522Config, Mfrc522Reader
from portal.cards.registry import card_book, list_cards, list_grants
from tests.hardware.fakes import installed
from tests.hardware.fakes.RPi import GPIO
from tests.hardware.isodep_emu import IsoDepCard
from tests.hardware.mfrc522_emu import EmulatedBoard, EmulatedCard
from tests.hardware.ntag424_emu import Ntag424App
from tests.station.conftest import Desk, Result

UID = bytes.fromhex("04C2A51AD26E80")
OTHER_UID = bytes.fromhex("04A1B2C3D4E581")
FIFO = 64


@pytest.fixture(autouse=True)
def fake_modules() -> Iterator[None]:
    with installed():
        GPIO.reset()
        yield
        GPIO.reset()


@pytest.fixture
def board() -> Iterator[EmulatedBoard]:
    # Real time: the station's reader sleeps for real, as it does on the Pi.
    emulated = EmulatedBoard(now=time.monotonic, reset_pin=25).plug_into_fakes()
    yield emulated
    emulated.close()


def personalise(desk: Desk, *args: str) -> Result:
    return desk.station("personalise", "--reader", "mfrc522", "--timeout", "2", "--json", *args)


def door_read(board: EmulatedBoard) -> BadgeRead:
    """The door's driver on the same chip: the first read it makes."""
    reader = Mfrc522Reader.from_config(Mfrc522Config(name="door"))
    stop = threading.Event()
    events: list[BadgeRead | ReaderStatus] = []

    def emit(event: BadgeRead | ReaderStatus) -> None:
        events.append(event)
        if isinstance(event, BadgeRead):
            stop.set()

    thread = threading.Thread(target=reader.run, args=(emit, stop), daemon=True)
    thread.start()
    stopped = stop.wait(5.0)
    stop.set()
    thread.join(5.0)
    reader.close()
    assert stopped, events
    [read] = [e for e in events if isinstance(e, BadgeRead)]
    return read


def test_a_blank_card_is_personalised_over_iso_dep_and_read_by_the_door(
    desk: Desk, board: EmulatedBoard
) -> None:
    desk.enroll()
    app = Ntag424App(uid=UID)
    card = IsoDepCard(UID, app=app)
    board.chip.add_card(card)
    inspected = desk.station("inspect", "--reader", "mfrc522", "--json")
    assert (inspected.code, inspected.json()) == (0, {"uid": UID.hex().upper(), "state": "blank"})
    done = personalise(desk)
    assert done.code == 0, done.err
    assert done.json() == {"uid": UID.hex().upper(), "state": "active", "counter": 1,
                           "resumed": False}  # fmt: skip
    # Over the chip: RATS with FSD 64, every block within the FIFO with its CRC, and
    # APDUs and answers longer than one frame chained (I-blocks with bit 0x10 from us,
    # R(ACK)s asking for the card's next block).
    assert card.received[0] == b"\xe0\x50"
    assert all(len(block) + 2 <= FIFO for block in card.received)
    assert any(b[0] & 0xE2 == 0x02 and b[0] & 0x10 for b in card.received[1:])
    assert any(b[0] & 0xF6 == 0xA2 for b in card.received[1:])
    assert any(len(c) + 3 > FIFO for c in card.apdus)  # a command no frame could carry whole
    assert card.state == "HALT"  # deselected at the end of each session
    # The portal holds the card active and checks its next read with its own keys.
    uid = UID.hex().upper()
    [row] = list_cards(desk.portal.engine)
    assert (row["uid"], row["state"], row["activated_counter"]) == (uid, "active", 1)
    held = card_book(desk.portal.engine, desk.portal.settings.data_dir).keys[uid]
    b = desk.bundle(UID)
    assert app.keys == [b.app_master, b.meta_read, b.file_read, b.key3, b.key4]
    # The door's driver reads it (WUPA wakes it from HALT) with a SUN message that checks.
    read = door_read(board)
    assert read.uid == uid
    message = sun_from_card_field(read.card)
    assert message is not None, read
    verdict = check_sun(held.meta_read, held.file_read, UID, message)
    assert verdict.authentic and verdict.counter == 2 > held.floor


def _frames_of_a_whole_run(desk: Desk, board: EmulatedBoard) -> int:
    uid = bytes.fromhex("04FFFFFFFFFF01")
    scratch = IsoDepCard(uid, app=Ntag424App(uid=uid))
    board.chip.add_card(scratch)
    assert personalise(desk).code == 0
    board.chip.remove_card(scratch)
    return scratch.frames


def test_a_card_taken_away_mid_way_is_finished_by_the_next_run(
    desk: Desk, board: EmulatedBoard
) -> None:
    desk.enroll()
    total = _frames_of_a_whole_run(desk, board)
    states = set()
    # Taken away early (nothing written yet), half way (keys 1-4 partly changed) and
    # late (key 0 changed: only the activation is missing).
    for n, leave_at in enumerate((total // 4, total // 2, total - 6)):
        uid = bytes([0x04, 0x20, n, 0, 0, 0, 0x80])
        app = Ntag424App(uid=uid)
        card = IsoDepCard(uid, app=app, faults={leave_at: "leave"})
        board.chip.add_card(card)
        cut = personalise(desk)
        assert cut.code == 1, (leave_at, cut.out)
        assert "the card left the reader" in cut.err and "run the command again" in cut.err
        assert len(cut.err.strip().splitlines()) == 1
        card.present = True  # put back on the reader
        inspected = desk.station("inspect", "--reader", "mfrc522", "--json")
        state = inspected.json()["state"]
        assert inspected.code == (1 if state == "locked" else 0)
        states.add(state)
        done = personalise(desk)
        assert done.code == 0, (leave_at, done.err)
        assert done.json()["state"] == "active" and done.json()["resumed"] == (state != "blank")
        board.chip.remove_card(card)
        b = desk.bundle(uid)
        assert app.keys == [b.app_master, b.meta_read, b.file_read, b.key3, b.key4]
    assert states == {"blank", "interrupted", "locked"}, states
    assert list_grants(desk.portal.engine)[0]["used"] == 4  # one card of the grant each


def test_no_card_within_the_timeout_is_one_line(desk: Desk, board: EmulatedBoard) -> None:
    desk.enroll()
    started = time.monotonic()
    done = desk.station("personalise", "--reader", "mfrc522", "--timeout", "0.3")
    assert time.monotonic() - started < 3
    assert done.code == 1
    assert done.err == "qatysu: error: reader mfrc522 on SPI 0.0: no card within 0.3 s\n"
    assert list_grants(desk.portal.engine)[0]["used"] == 0


def test_a_card_that_is_not_blank_or_not_iso_dep_is_refused(
    desk: Desk, board: EmulatedBoard
) -> None:
    desk.enroll()
    foreign = Ntag424App(uid=OTHER_UID, keys=[b"\x5a" * 16] * 5, key_versions=[1] * 5)
    card = board.chip.add_card(IsoDepCard(OTHER_UID, app=foreign))
    refused = personalise(desk)
    assert refused.code == 1 and len(refused.err.strip().splitlines()) == 1
    assert "was not issued to this station" in refused.err
    assert foreign.keys == [b"\x5a" * 16] * 5
    board.chip.remove_card(card)
    board.chip.add_card(EmulatedCard(UID))  # an NTAG 21x: the same UID size, no ISO-DEP
    plain = personalise(desk)
    assert plain.code == 1
    assert plain.err == (
        f"qatysu: error: card {UID.hex().upper()}: SAK 0x00, no ISO 14443-4: not an NTAG 424 DNA\n"
    )
    assert list_cards(desk.portal.engine) == []
    assert list_grants(desk.portal.engine)[0]["used"] == 0


def test_the_chip_is_found_from_the_agent_config(desk: Desk, tmp_path: Path) -> None:
    desk.enroll()
    board = EmulatedBoard(now=time.monotonic, device=1, reset_pin=24).plug_into_fakes()
    try:
        board.chip.add_card(IsoDepCard(UID, app=Ntag424App(uid=UID)))
        config = tmp_path / "agent.toml"
        config.write_text(
            '[[readers]]\nname = "desk"\ndriver = "mfrc522"\nspi_device = 1\nreset_pin = 24\n'
        )
        station = ("station", "--state-dir", str(desk.state_dir), "inspect", "--json")
        found = desk.run("--config", str(config), *station)
        assert (found.code, found.json()["state"]) == (0, "blank"), found.err
        # Without it: SPI 0.0, where nothing is plugged in; one line, exit 1.
        default = desk.run(*station, "--timeout", "0.2")
        assert default.code == 1
        assert default.err.startswith("qatysu: error: reader mfrc522: reader station: ")
        assert "SPI 0.0" in default.err and len(default.err.splitlines()) == 1
        config.write_text('[[readers]]\nname = "rfid"\ndriver = "rdm6300"\n')
        wrong = desk.run("--config", str(config), *station)
        assert wrong.code == 2
        assert wrong.err == (
            f'qatysu: error: {config}: readers: no [[readers]] entry with driver = "mfrc522"\n'
        )
    finally:
        board.close()


def test_a_card_slow_to_answer_gets_the_time_it_asks_for(desk: Desk, board: EmulatedBoard) -> None:
    # FWI 4 (4.8 ms) and 60 ms per command: every answer comes after an S(WTX) for
    # about 62 ms, past the door's 50 ms cap and within the station's.
    desk.enroll()
    app = Ntag424App(uid=UID)
    card = board.chip.add_card(IsoDepCard(UID, app=app, fwi=4, apdu_time_s=0.06))
    assert isinstance(card, IsoDepCard)
    done = personalise(desk)
    assert done.code == 0, done.err
    assert card.wtx_sent == len(card.apdus) > 20
    # Each answer waited for, not given up on and asked again with R(NAK).
    assert not [b for b in card.received if b[0] & 0xF6 == 0xB2]
    b = desk.bundle(UID)
    assert app.keys == [b.app_master, b.meta_read, b.file_read, b.key3, b.key4]
