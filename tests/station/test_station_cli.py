"""``qatysu station`` against the real portal under uvicorn, the card emulated.

What must hold: a blank card becomes an active card whose reads check at the
portal; a card cut off at any command is finished by running the command again
(also once key 0 has changed, with the portal's key for it); a card that is not
blank is refused with one line and costs nothing; no card key ever reaches the
station's disk or its output.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import stat
from pathlib import Path

import certifi
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol import public_key_b64
from agent.protocol.card_keys import CardKeyBundle
from agent.protocol.ntag424 import check_sun
from agent.station import channels
from agent.station.personalise import read_sun
from agent.station.store import load_station_key
from portal.cards.registry import card_book, enroll_station, list_cards, list_grants
from tests.hardware.ntag424_emu import EmulatedChannel, Ntag424App
from tests.station.conftest import URL, Desk

OTHER_UID = bytes.fromhex("04A1B2C3D4E581")


def _forms(key: bytes) -> list[bytes]:
    return [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key)]


def _assert_no_card_key_on_disk(root: Path, bundle: CardKeyBundle) -> None:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files  # the station's key and enrollment are there
    for path in files:
        data = path.read_bytes()
        for name in ("app_master", "meta_read", "file_read", "key3", "key4"):
            for form in _forms(getattr(bundle, name)):
                assert form not in data, f"{name} found in {path}"


def test_enroll_pins_the_portal_key_and_keeps_the_station_key_private(desk: Desk) -> None:
    done = desk.station(
        "enroll", "--portal", desk.live.url, "--grant", desk.grant(5), "--insecure", "--json"
    )
    assert done.code == 0, done.err
    answer = done.json()
    assert answer["portal_public_key"] == public_key_b64(desk.portal.key)
    assert (answer["cards"], answer["used"]) == (5, 0)
    saved = json.loads((desk.state_dir / "station.json").read_text())
    assert saved["portal_public_key"] == public_key_b64(desk.portal.key)
    assert saved["url"] == URL
    key_file = desk.state_dir / "station.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    [grant] = list_grants(desk.portal.engine)
    assert grant["station_key"] == answer["station_key"] and grant["station"] == answer["station"]


def test_enroll_refusals_are_one_line(desk: Desk) -> None:
    plain = desk.station("enroll", "--portal", desk.live.url, "--grant", "qcg_x")
    assert plain.code == 2 and "plain http" in plain.err
    unknown = desk.station("enroll", "--portal", desk.live.url, "--grant", "qcg_x", "--insecure")
    assert unknown.code == 1
    assert unknown.err.strip().endswith("401: unknown station grant (unknown or expired grant)")
    assert len(unknown.err.strip().splitlines()) == 1


def test_a_blank_card_is_personalised_activated_and_forgotten(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    desk.enroll()
    inspected = desk.station("inspect", "--reader", "emulated", "--json")
    assert (inspected.code, inspected.json()) == (
        0,
        {"uid": desk.card.uid.hex().upper(), "state": "blank"},
    )
    done = desk.personalise()
    assert done.code == 0, done.err
    uid = desk.card.uid.hex().upper()
    assert done.json() == {"uid": uid, "state": "active", "counter": 1, "resumed": False}
    bundle = desk.bundle(desk.card.uid)
    assert desk.card.keys == [
        bundle.app_master,
        bundle.meta_read,
        bundle.file_read,
        bundle.key3,
        bundle.key4,
    ]
    [card] = list_cards(desk.portal.engine)
    assert (card["uid"], card["state"], card["activated_counter"]) == (uid, "active", 1)
    # The portal checks the card's next read with its own keys, above the activation.
    held = card_book(desk.portal.engine, desk.portal.settings.data_dir).keys[uid]
    sun = read_sun(EmulatedChannel(desk.card))
    verdict = check_sun(held.meta_read, held.file_read, desk.card.uid, sun)
    assert verdict.authentic and verdict.counter == 2 > held.floor
    # Forgotten: no key in the station's files, its output or its log.
    _assert_no_card_key_on_disk(desk.state_dir, bundle)
    for name in ("app_master", "meta_read", "file_read", "key3", "key4"):
        key = getattr(bundle, name)
        for text in (done.out, done.err, inspected.out, caplog.text):
            assert key.hex() not in text.lower()
            assert base64.b64encode(key).decode() not in text
    # The card is now locked: inspect says so (exit 1), personalise refuses it.
    again = desk.station("inspect", "--reader", "emulated")
    assert again.code == 1 and "locked" in again.out
    refused = desk.personalise()
    assert refused.code == 1
    assert refused.err.strip() == (
        f"qatysu: error: card {uid}: the portal refuses it ({desk.live.url}/api/v1/cards/keys: "
        f"409: card {uid} is active)"
    )


def test_a_card_of_another_system_is_refused_and_costs_nothing(desk: Desk) -> None:
    desk.enroll(count=1)
    desk.card = Ntag424App(uid=OTHER_UID, keys=[b"\x5a" * 16] * 5, key_versions=[1] * 5)
    refused = desk.personalise()
    assert refused.code == 1 and len(refused.err.strip().splitlines()) == 1
    assert "was not issued to this station" in refused.err
    assert list_cards(desk.portal.engine) == []
    assert list_grants(desk.portal.engine)[0]["used"] == 0
    # Factory key 0 but another NDEF layout: refused before the portal is asked at all.
    desk.card = Ntag424App(uid=OTHER_UID)
    desk.card.files[2].read = 0  # read needs key 0: not how we leave or find a card
    foreign = desk.personalise()
    assert foreign.code == 1
    assert foreign.err.strip() == (
        f"qatysu: error: card {OTHER_UID.hex().upper()}: not blank: the NDEF file's settings "
        "are neither factory nor ours"
    )
    assert list_grants(desk.portal.engine)[0]["used"] == 0


def test_a_portal_that_is_not_the_pinned_one_gets_no_card_written(desk: Desk) -> None:
    desk.enroll()
    path = desk.state_dir / "station.json"
    saved = json.loads(path.read_text())
    saved["portal_public_key"] = public_key_b64(Ed25519PrivateKey.generate())
    path.write_text(json.dumps(saved))
    done = desk.personalise()
    assert done.code == 1
    assert "signature does not verify with the pinned portal key" in done.err
    assert desk.card.keys == [bytes(16)] * 5  # nothing written


def test_unknown_reader_and_no_enrollment(desk: Desk) -> None:
    desk.enroll()
    unknown = desk.station("inspect", "--reader", "nope")
    assert unknown.code == 2 and "--reader 'nope': no such station reader" in unknown.err
    fresh = desk.run("station", "--state-dir", str(desk.state_dir / "none"), "personalise")
    assert fresh.code == 2 and "this station is not enrolled" in fresh.err


def _full_run_commands(desk: Desk) -> int:
    """How many APDUs a whole personalisation takes (on a scratch card and portal grant)."""
    scratch = Ntag424App(uid=bytes.fromhex("04FFFFFFFFFF01"))
    desk.card, before = scratch, len(scratch.commands)
    assert desk.personalise().code == 0
    return len(scratch.commands) - before


def test_a_power_cut_at_any_command_is_finished_by_running_again(desk: Desk) -> None:
    desk.enroll()
    total = _full_run_commands(desk)
    assert total > 20
    seen_locked = seen_interrupted = False
    for after in (False, True):
        for cut_at in range(1, total + 1):
            uid = bytes([0x04, 0x10, int(after), cut_at, 0, 0, 0x80])
            desk.card = Ntag424App(uid=uid, cut_at=cut_at, cut_after_execution=after)
            cut = desk.personalise()
            assert cut.code == 1, (cut_at, after, cut.out)
            assert "the card left the reader" in cut.err and "run the command again" in cut.err
            bundle = desk.bundle(uid)
            seen_locked |= desk.card.keys[0] == bundle.app_master
            seen_interrupted |= desk.card.keys[:2] == [bytes(16), bundle.meta_read]
            state = desk.station("inspect", "--reader", "emulated", "--json").json()["state"]
            done = desk.personalise()
            assert done.code == 0, (cut_at, after, done.err)
            answer = done.json()
            assert answer["state"] == "active" and answer["resumed"] == (state != "blank")
            assert desk.card.keys == [
                bundle.app_master,
                bundle.meta_read,
                bundle.file_read,
                bundle.key3,
                bundle.key4,
            ]
            [row] = [c for c in list_cards(desk.portal.engine) if c["uid"] == uid.hex().upper()]
            assert row["state"] == "active" and row["activated_counter"] == answer["counter"]
            _assert_no_card_key_on_disk(desk.state_dir, bundle)
            for text in (cut.out, cut.err, done.out, done.err):
                assert bundle.app_master.hex() not in text.lower()
                assert bundle.file_read.hex() not in text.lower()
    # Some cuts fell after key 0 changed (the portal's key finished them), some between.
    assert seen_locked and seen_interrupted
    # Each card used one card of the grant, however many times it was asked for.
    [grant] = list_grants(desk.portal.engine)
    assert grant["used"] == 2 * total + 1


def test_a_failed_enrollment_keeps_the_old_one_and_a_lost_answer_is_retried(desk: Desk) -> None:

    desk.enroll()
    before = (desk.state_dir / "station.key").read_bytes()
    failed = desk.station("enroll", "--portal", desk.live.url, "--grant", "qcg_x", "--insecure")
    assert failed.code == 1
    assert (desk.state_dir / "station.key").read_bytes() == before
    assert desk.personalise().code == 0  # the old enrollment still works
    # The portal bound the pending key but its answer never arrived: the retry reuses it.
    pending = load_station_key(desk.state_dir, "station.key.pending")
    grant = desk.grant()
    enroll_station(desk.portal.engine, grant, public_key_b64(pending), now=desk.portal.clock())
    again = desk.station(
        "enroll", "--portal", desk.live.url, "--grant", grant, "--insecure", "--json"
    )
    assert again.code == 0, again.err
    assert again.json()["station_key"] == public_key_b64(pending)
    assert not (desk.state_dir / "station.key.pending").exists()
    assert public_key_b64(load_station_key(desk.state_dir)) == public_key_b64(pending)
    desk.card = Ntag424App(uid=OTHER_UID)
    assert desk.personalise().code == 0  # signed with the new key, under the new grant


class _NotAnNtag:
    """Another ISO-DEP card in the field: it knows no NDEF application."""

    uid = bytes.fromhex("04112233445566")

    def transceive_apdu(self, command: bytes) -> bytes:
        return b"\x6a\x82"


def test_a_card_that_is_not_an_ntag424_is_refused_in_one_line(desk: Desk) -> None:
    desk.enroll()
    channels.register_reader(
        "emulated", lambda timeout, config: contextlib.nullcontext(_NotAnNtag())
    )
    for command in ("inspect", "personalise"):
        done = desk.station(command, "--reader", "emulated")
        assert done.code == 1
        assert (
            done.err
            == "qatysu: error: card 04112233445566: no NDEF application: not an NTAG 424 DNA\n"
        )
    assert list_grants(desk.portal.engine)[0]["used"] == 0


def test_a_city_ca_is_checked_and_kept_with_the_enrollment(desk: Desk, tmp_path: Path) -> None:
    junk = tmp_path / "city-ca.pem"
    junk.write_text("not a certificate\n")
    https = desk.live.url.replace("http://", "https://", 1)
    bad = desk.station("enroll", "--portal", https, "--grant", "qcg_x", "--ca-file", str(junk))
    assert bad.code == 2 and "cannot load CA certificates" in bad.err
    assert not (desk.state_dir / "station.json").exists()
    done = desk.station(
        "enroll", "--portal", desk.live.url, "--grant", desk.grant(1), "--insecure",
        "--ca-file", certifi.where(),
    )  # fmt: skip
    assert done.code == 0, done.err
    saved = json.loads((desk.state_dir / "station.json").read_text())
    assert saved["ca_file"] == certifi.where()  # every later request trusts it too
