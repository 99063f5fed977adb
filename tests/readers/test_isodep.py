"""ISO 14443-4 (agent/readers/isodep.py) against an emulated ISO-DEP card, chip left out.

The flows are driven frame by frame into :class:`tests.hardware.isodep_emu.IsoDepCard`,
which hosts either a static Type 4 tag or the emulated NTAG 424 DNA application, so
these tests hold the block protocol and the NDEF read; the driver over the chip is
tests/readers/test_mfrc522_sun.py's.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from agent.protocol.card_keys import CardKeyBundle
from agent.protocol.ntag424 import check_sun, parse_sun_ndef
from agent.readers.iso14443 import Activated, Frame, Reply, activate
from agent.readers.isodep import IsoDep, IsoDepError, read_ndef_file
from agent.station.personalise import personalise
from tests.hardware.isodep_emu import IsoDepCard, StaticType4App, sun_ndef_file
from tests.hardware.mfrc522_emu import from_bits, to_bits
from tests.hardware.ntag424_emu import EmulatedChannel, Ntag424App

UID = bytes.fromhex("04DE5F1EACC040")


def drive(flow: Generator[Frame, Reply | None, Any], card: IsoDepCard) -> Any:
    """Run a flow against one card: each frame in, the card's answer back as a Reply."""
    try:
        frame = next(flow)
        while True:
            count = (
                len(frame.data) * 8
                if not frame.tx_last_bits
                else ((len(frame.data) - 1) * 8 + frame.tx_last_bits)
            )
            answer = card.receive(to_bits(frame.data, count))
            reply = None
            if answer is not None:
                reply = Reply(from_bits(answer), last_bits=len(answer) % 8)
            frame = flow.send(reply)
    except StopIteration as stop:
        return stop.value


def session(card: IsoDepCard) -> IsoDep:
    activated = drive(activate(halt=False), card)
    assert isinstance(activated, Activated) and activated.sak & 0x20
    link = IsoDep()
    drive(link.rats(), card)
    return link


def test_a_sun_card_s_ndef_file_is_read_and_its_message_checks() -> None:
    file, picc, mac = sun_ndef_file(UID, 7)
    card = IsoDepCard(UID, app=StaticType4App(file))
    link = session(card)
    read = drive(read_ndef_file(link), card)
    assert read == file
    message = parse_sun_ndef(read)
    assert message is not None and (message.picc, message.mac) == (picc, mac)
    assert check_sun(bytes(16), bytes(16), UID, message).counter == 7
    assert drive(link.deselect(), card) is True


@pytest.mark.parametrize("fault", ["drop", "corrupt", "lose"])
@pytest.mark.parametrize("at", [2, 3, 4])
def test_a_lost_or_garbled_frame_is_recovered(fault: str, at: int) -> None:
    file, _, _ = sun_ndef_file(UID, 1)
    card = IsoDepCard(UID, app=StaticType4App(file), faults={at: fault})
    link = session(card)
    assert drive(read_ndef_file(link), card) == file


def test_frames_respect_a_small_card_frame_size_and_chain() -> None:
    file, _, _ = sun_ndef_file(UID, 1, base_url="https://qatysu.kz/" + "c" * 120)
    card = IsoDepCard(UID, app=StaticType4App(file), fsci=2)  # FSC 32
    link = session(card)
    assert link.max_frame == 32
    assert drive(read_ndef_file(link), card) == file
    blocks = card.received[1:]  # after RATS
    assert all(len(b) + 2 <= 32 for b in blocks)
    i_blocks = [b[0] for b in blocks if b[0] & 0xC0 == 0x00]
    # I-blocks alternate their block number, as the standard's rules A and B want.
    assert [pcb & 0x01 for pcb in i_blocks] == [n % 2 for n in range(len(i_blocks))]


def test_a_card_that_does_not_answer_rats_is_an_error_the_driver_can_fall_back_on() -> None:
    card = IsoDepCard(UID, app=StaticType4App(b""), answers_rats=False)
    drive(activate(halt=False), card)
    with pytest.raises(IsoDepError):
        drive(IsoDep().rats(), card)


def test_a_card_without_an_ndef_application_reads_as_none() -> None:
    card = IsoDepCard(UID, app=StaticType4App(b"", with_ndef_app=False))
    link = session(card)
    assert drive(read_ndef_file(link), card) is None


def test_a_personalised_ntag_424_read_through_iso_dep_checks_with_its_keys() -> None:
    bundle = CardKeyBundle(
        app_master=bytes.fromhex("00112233445566778899AABBCCDDEEFF"),
        meta_read=bytes.fromhex("11" * 16),
        file_read=bytes.fromhex("22" * 16),
        key3=bytes.fromhex("33" * 16),
        key4=bytes.fromhex("44" * 16),
        url="https://qatysu.kz/c",
    )
    app = Ntag424App()
    first = personalise(EmulatedChannel(app), bundle).counter
    counters = []
    for _ in range(2):  # two taps: the card leaves the field in between
        card = IsoDepCard(app.uid, app=app)
        link = session(card)
        message = parse_sun_ndef(drive(read_ndef_file(link), card))
        assert message is not None
        check = check_sun(bundle.meta_read, bundle.file_read, app.uid, message)
        assert check.authentic
        counters.append(check.counter)
        drive(link.deselect(), card)
    assert counters == [first + 1, first + 2]


def test_the_ndef_file_is_read_from_offset_0_without_an_exchange_for_nlen_alone() -> None:
    file, _, _ = sun_ndef_file(UID, 3)
    card = IsoDepCard(UID, app=StaticType4App(file))
    link = session(card)
    assert drive(read_ndef_file(link), card) == file
    reads = [apdu for apdu in card.apdus if apdu[1] == 0xB0]
    assert [(r[2] << 8 | r[3], r[4]) for r in reads] == [(0, 59), (59, len(file) - 59)]


def test_a_file_shorter_than_one_chunk_is_read_whole_and_a_truncated_one_is_none() -> None:
    short = b"\x00\x05" + bytes.fromhex("D10101 55 00")[:5]
    card = IsoDepCard(UID, app=StaticType4App(short))
    assert drive(read_ndef_file(session(card)), card) == short  # 6282: end of file
    truncated = b"\x00\x40" + bytes(10)  # NLEN 64, 10 bytes in the file
    card = IsoDepCard(UID, app=StaticType4App(truncated))
    assert drive(read_ndef_file(session(card)), card) is None
