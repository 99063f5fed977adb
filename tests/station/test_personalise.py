"""Personalising an emulated factory-blank NTAG 424 DNA (tests/hardware/ntag424_emu.py)."""

from __future__ import annotations

import pytest

from agent.exceptions import CardNotBlank
from agent.protocol.card_keys import CardKeyBundle
from agent.protocol.ntag424 import SunMessage, check_sun, sdm_mac
from agent.station.personalise import personalise, read_sun
from tests.hardware.ntag424_emu import EmulatedChannel, Ntag424App, PowerCut

BUNDLE = CardKeyBundle(
    app_master=bytes.fromhex("00112233445566778899AABBCCDDEEFF"),
    meta_read=bytes.fromhex("11" * 16),
    file_read=bytes.fromhex("22" * 16),
    key3=bytes.fromhex("33" * 16),
    key4=bytes.fromhex("44" * 16),
    url="https://qatysu.kz/c",
)


def test_a_blank_card_becomes_a_qatysu_card() -> None:
    app = Ntag424App()
    outcome = personalise(EmulatedChannel(app), BUNDLE)
    assert outcome.counter == 1 and not outcome.resumed
    assert app.keys == [
        BUNDLE.app_master,
        BUNDLE.meta_read,
        BUNDLE.file_read,
        BUNDLE.key3,
        BUNDLE.key4,
    ]
    assert app.key_versions == [1] * 5
    # Every later tap gives a new counter whose MAC checks with the keys.
    for expected in (2, 3):
        sun = read_sun(EmulatedChannel(app))
        check = check_sun(BUNDLE.meta_read, BUNDLE.file_read, app.uid, sun)
        assert check.authentic and check.counter == expected


def test_the_ndef_file_cannot_be_rewritten_without_key_0() -> None:
    app = Ntag424App()
    personalise(EmulatedChannel(app), BUNDLE)
    app.activate()
    assert app.apdu(bytes.fromhex("00A4040C07D276000085010100")) == b"\x90\x00"
    assert app.apdu(bytes.fromhex("00A4000C02E104")) == b"\x90\x00"
    assert app.apdu(bytes.fromhex("00D6000002FFFF")) == b"\x69\x82"
    assert app.apdu(bytes.fromhex("908D00000902000000020000FFFF00")) == b"\x91\xae"


def test_a_card_that_is_not_blank_is_refused() -> None:
    app = Ntag424App()
    personalise(EmulatedChannel(app), BUNDLE)
    with pytest.raises(CardNotBlank, match="key 0 is not the factory key"):
        personalise(EmulatedChannel(app), BUNDLE)


def test_without_the_keys_nobody_makes_a_valid_mac_for_a_new_counter() -> None:
    app = Ntag424App()
    personalise(EmulatedChannel(app), BUNDLE)
    seen = read_sun(EmulatedChannel(app))
    # A copier holding every message read so far can only replay them; a MAC for
    # counter 3 made with a guessed file-read key does not check.
    forged = SunMessage(seen.picc, sdm_mac(bytes(16), app.uid, 3))
    assert not check_sun(BUNDLE.meta_read, BUNDLE.file_read, app.uid, forged).authentic


@pytest.mark.parametrize("cut_at", range(1, 22))
@pytest.mark.parametrize("after", [False, True])
def test_a_power_cut_then_a_retry_finishes_the_card(cut_at: int, after: bool) -> None:
    app = Ntag424App(cut_at=cut_at, cut_after_execution=after)
    with pytest.raises(PowerCut):
        personalise(EmulatedChannel(app), BUNDLE)
    try:
        outcome = personalise(EmulatedChannel(app), BUNDLE)
    except CardNotBlank:
        # Only once key 0 has changed is the card no longer ours to redo; it is then
        # fully personalised and its SUN message checks.
        assert app.keys[0] == BUNDLE.app_master
        sun = read_sun(EmulatedChannel(app))
        assert check_sun(BUNDLE.meta_read, BUNDLE.file_read, app.uid, sun).authentic
        return
    assert check_sun(BUNDLE.meta_read, BUNDLE.file_read, app.uid, outcome.sun).authentic
    assert app.keys[1:] == [BUNDLE.meta_read, BUNDLE.file_read, BUNDLE.key3, BUNDLE.key4]
