"""NTAG 424 DNA SUN crypto against NXP's published worked examples.

Sources: NXP AN12196 "NTAG 424 DNA and NTAG 424 DNA TagTamper features and hints",
the SUN example with encrypted PICCData and SDMMAC (meta and file read keys all
zero); NXP AN10922 "Symmetric key diversifications", section 2.2 (AES-128).
"""

from __future__ import annotations

from agent.protocol import ntag424
from agent.protocol.ntag424 import SunMessage

ZERO = bytes(16)
AN12196_PICC = bytes.fromhex("EF963FF7828658A599F3041510671E88")
AN12196_MAC = bytes.fromhex("94EED9EE65337086")
AN12196_UID = bytes.fromhex("04DE5F1EACC040")


def test_an12196_picc_data_decrypts_to_the_uid_and_counter() -> None:
    picc = ntag424.decrypt_picc(ZERO, AN12196_PICC)
    assert picc is not None
    assert picc.uid == AN12196_UID
    assert picc.counter == 0x3D


def test_an12196_session_key_and_sdmmac() -> None:
    key = ntag424.sdm_session_mac_key(ZERO, AN12196_UID, 0x3D)
    assert key == bytes.fromhex("3FB5F6E3A807A03D5E3570ACE393776F")
    assert ntag424.sdm_mac(ZERO, AN12196_UID, 0x3D) == AN12196_MAC


def test_an10922_aes128_diversification() -> None:
    master = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    m = bytes.fromhex("04782E21801D80") + bytes.fromhex("3042F5") + b"NXP Abu"
    assert ntag424.diversify_key(master, m) == bytes.fromhex("A8DD63A3B89D54B37CA802473FDA9175")


def test_check_sun_names_each_failure() -> None:
    good = SunMessage(AN12196_PICC, AN12196_MAC)
    assert ntag424.check_sun(ZERO, ZERO, AN12196_UID, good) == ntag424.SunCheck(0x3D, None)
    other_uid = bytes.fromhex("04DE5F1EACC041")
    assert ntag424.check_sun(ZERO, ZERO, other_uid, good).problem == "wrong_uid"
    bad_mac = SunMessage(AN12196_PICC, bytes(8))
    assert ntag424.check_sun(ZERO, ZERO, AN12196_UID, bad_mac).problem == "wrong_mac"
    wrong_key = bytes([1]) + bytes(15)
    assert ntag424.check_sun(wrong_key, ZERO, AN12196_UID, good).problem == "undecryptable"
    short = SunMessage(AN12196_PICC[:8], AN12196_MAC)
    assert ntag424.check_sun(ZERO, ZERO, AN12196_UID, short).problem == "malformed"


def test_the_ndef_template_round_trips_through_the_parser() -> None:
    file, picc_at, mac_at = ntag424.ndef_url_file("https://qatysu.kz/c")
    assert file[picc_at : picc_at + 32] == b"0" * 32
    assert file[mac_at : mac_at + 16] == b"0" * 16
    mirrored = bytearray(file)
    mirrored[picc_at : picc_at + 32] = AN12196_PICC.hex().upper().encode()
    mirrored[mac_at : mac_at + 16] = AN12196_MAC.hex().upper().encode()
    assert ntag424.parse_sun_ndef(bytes(mirrored)) == SunMessage(AN12196_PICC, AN12196_MAC)
    field = ntag424.card_field(SunMessage(AN12196_PICC, AN12196_MAC))
    assert field == {
        "kind": "ntag424-sun",
        "picc": AN12196_PICC.hex().upper(),
        "mac": "94EED9EE65337086",
    }
    assert ntag424.sun_from_card_field(field) == SunMessage(AN12196_PICC, AN12196_MAC)


def test_files_without_a_sun_message_parse_to_none() -> None:
    assert ntag424.parse_sun_ndef(b"") is None
    assert ntag424.parse_sun_ndef(b"\x00\x00") is None
    file, _, _ = ntag424.ndef_url_file("https://qatysu.kz/c")
    truncated = file[:-5]
    assert ntag424.parse_sun_ndef(truncated) is None
    text_record = b"\x00\x08\xd1\x01\x04T\x02enx"
    assert ntag424.parse_sun_ndef(text_record) is None
    assert (
        ntag424.sun_from_card_field({"kind": "ntag424-sun", "picc": "zz" * 16, "mac": "00" * 8})
        is None
    )
    assert ntag424.sun_from_card_field({"kind": "other"}) is None
