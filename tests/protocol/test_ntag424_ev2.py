"""EV2 secure messaging against NXP's worked examples.

Source of every hex value below unless said otherwise: NXP application note AN12196
"NTAG 424 DNA and NTAG 424 DNA TagTamper features and hints", Rev. 2.0 — the tables
for AuthenticateEV2First with key 0x00 (Table 14) and with key 0x03 (Table 20),
ChangeFileSettings (Table 19), GetFileSettings in CommMode.MAC, WriteData in
CommMode.Full (Tables 17 and 22) and ChangeKey of another key (Table 26) and of the
authenticating key 0x00 (Table 27).

Not found as a published vector: the jamcrc of a key alone (it is checked through
Table 26, whose ciphertext contains it) and the ISO/IEC 9797-1 padding (checked
through every encrypted example).
"""

from __future__ import annotations

import pytest

from agent.protocol.ntag424_ev2 import (
    AccessRights,
    CardError,
    CommMode,
    FileSettings,
    SdmSettings,
    Session,
    auth_first_command,
    auth_first_finish,
    auth_first_respond,
    change_key_data,
    jamcrc,
    pad_m2,
    parse_file_settings,
    session_keys,
    unpad_m2,
)

H = bytes.fromhex


def test_authenticate_ev2_first_key_0_table_14() -> None:
    key = bytes(16)
    assert auth_first_command(0) == H("9071000002000000")
    challenge = auth_first_respond(
        key, 0, H("A04C124213C186F22399D33AC2A3021591AF"), H("13C5DB8A5930439FC3DEF9A4C675360F")
    )
    assert challenge.rnd_b == H("B9E2FC789B64BF237CCCAA20EC7E6E48")
    assert challenge.command == H(
        "90AF00002035C3E05A752E0144BAC0DE51C1F22C56B34408A23D8AEA266CAB947EA8E0118D00"
    )
    session = auth_first_finish(
        challenge, H("3FA64DB5446D1F34CD6EA311167F5E4985B89690C04A05F17FA7AB2F081206639100")
    )
    assert session.ti == H("9D00C4DF")
    assert session.enc_key == H("1309C877509E5A215007FF0ED19CA564")
    assert session.mac_key == H("4C6626F5E72EA694202139295C7A7FC7")
    assert session.counter == 0


def test_authenticate_ev2_first_key_3_table_20() -> None:
    challenge = auth_first_respond(
        bytes(16),
        3,
        H("B875CEB0E66A6C5CD00898DC371F92D191AF"),
        H("B98F4C50CF1C2E084FD150E33992B048"),
    )
    assert auth_first_command(3) == H("9071000002030000")
    assert challenge.command == H(
        "90AF000020FF0306E47DFBC50087C4D8A78E88E62DE1E8BE457AA477C707E2F0874916A8B100"
    )
    session = auth_first_finish(
        challenge, H("0CC9A8094A8EEA683ECAAC5C7BF20584206D0608D477110FC6B3D5D3F65C3A6A9100")
    )
    assert session.ti == H("7614281A")
    assert (session.enc_key, session.mac_key) == (
        H("7A93D6571E4B180FCA6AC90C9A7488D4"),
        H("FC4AF159B62E549B5812394CAB1918CC"),
    )


def test_session_keys_table_14_sv1_sv2() -> None:
    enc, mac = session_keys(
        bytes(16), H("13C5DB8A5930439FC3DEF9A4C675360F"), H("B9E2FC789B64BF237CCCAA20EC7E6E48")
    )
    assert enc == H("1309C877509E5A215007FF0ED19CA564")
    assert mac == H("4C6626F5E72EA694202139295C7A7FC7")


def test_a_card_that_does_not_return_rnd_a_is_refused() -> None:
    challenge = auth_first_respond(
        bytes(16), 0, H("A04C124213C186F22399D33AC2A3021591AF"), bytes(range(16))
    )
    with pytest.raises(CardError, match="did not prove"):
        auth_first_finish(
            challenge, H("3FA64DB5446D1F34CD6EA311167F5E4985B89690C04A05F17FA7AB2F081206639100")
        )
    with pytest.raises(CardError, match="wrong key"):
        auth_first_finish(challenge, H("91AE"))


def _table_14_session(counter: int) -> Session:
    return Session(
        enc_key=H("1309C877509E5A215007FF0ED19CA564"),
        mac_key=H("4C6626F5E72EA694202139295C7A7FC7"),
        ti=H("9D00C4DF"),
        counter=counter,
    )


def test_change_file_settings_table_19() -> None:
    session = _table_14_session(counter=1)
    settings = FileSettings(
        CommMode.PLAIN,
        AccessRights(read=0xE, write=0, read_write=0, change=0),
        sdm=SdmSettings(
            meta_read=2,
            file_read=1,
            counter_retrieve=1,
            picc_offset=0x20,
            mac_input_offset=0x43,
            mac_offset=0x43,
        ),
    )
    data = settings.change_data()
    assert data == H("4000E0C1F121200000430000430000")
    apdu = session.command(0x5F, b"\x02", data, CommMode.FULL)
    assert apdu == H("905F0000190261B6D97903566E84C3AE5274467E89EAD799B7C1A0EF7A0400")
    assert session.response(H("57BFF87B1241E93D9100"), CommMode.MAC, "ChangeFileSettings") == b""
    assert session.counter == 2


def test_a_response_mac_that_does_not_check_is_refused() -> None:
    session = _table_14_session(counter=1)
    session.command(0x5F, b"\x02", H("4000E0C1F121200000430000430000"), CommMode.FULL)
    with pytest.raises(CardError, match="MAC"):
        session.response(H("57BFF87B1241E93E9100"), CommMode.MAC, "ChangeFileSettings")
    with pytest.raises(CardError, match="919D"):
        session.response(H("919D"), CommMode.MAC, "ChangeFileSettings")


def test_get_file_settings_in_mac_mode() -> None:
    """AN12196's GetFileSettings example (session MAC key 8248..., TI 7A21085E)."""
    session = Session(
        enc_key=bytes(16), mac_key=H("8248134A386E86EB7FAF54A52E536CB6"), ti=H("7A21085E")
    )
    assert session.command(0xF5, b"\x02", b"", CommMode.MAC) == H("90F5000009026597A457C8CD442C00")
    data = session.response(
        H("0040EEEE000100D1FE001F00004400004400002000006A00002A474282E7A479869100"),
        CommMode.MAC,
        "GetFileSettings",
    )
    assert data == H("0040EEEE000100D1FE001F00004400004400002000006A0000")
    # Its SDM layout (encrypted file data) is not one Qatysu writes: refused, not guessed.
    with pytest.raises(CardError, match="not one Qatysu"):
        parse_file_settings(data)


def test_write_data_full_table_22() -> None:
    session = Session(
        enc_key=H("7A93D6571E4B180FCA6AC90C9A7488D4"),
        mac_key=H("FC4AF159B62E549B5812394CAB1918CC"),
        ti=H("7614281A"),
    )
    header = H("030000000A0000")
    apdu = session.command(0x8D, header, H("0102030405060708090A"), CommMode.FULL)
    assert apdu == H("908D00001F030000000A00006B5E6804909962FC4E3FF5522CF0F8436C0C53315B9C73AA00")
    assert session.response(H("C26D236E4A7C046D9100"), CommMode.MAC, "WriteData") == b""


def test_write_data_full_ndef_table_17() -> None:
    session = _table_14_session(counter=0)
    # The NDEF file of the example: NLEN 0x0051, a URI record for
    # https://choose.url.com/ntag424?e=<32 zeros>&c=<16 zeros>, zeros to 128 bytes.
    uri = b"choose.url.com/ntag424?e=" + b"0" * 32 + b"&c=" + b"0" * 16
    ndef = H("0051D1014D5504") + uri
    ndef += bytes(0x80 - len(ndef))
    apdu = session.command(0x8D, H("02000000800000"), ndef, CommMode.FULL)
    assert apdu == H(
        "908D00009F02000000800000"
        "421C73A27D827658AF481FDFF20A5025B559D0E3AA21E58D347F343CFFC768B"
        "FE596C706BC00F2176781D4B0242642A0FF5A42C461AAF894D9A1284B8C76BC"
        "FA658ACD40555D362E08DB15CF421B51283F9064BCBE20E96CAE545B407C9D"
        "651A3315B27373772E5DA2367D2064AE054AF996C6F1F669170FA88CE8C4E3"
        "A4A7BBBEF0FD971FF532C3A802AF745660F2B4"
        "D1D9A8499661EBF3"
        "00"
    )
    assert session.response(H("FC222E5F7A5424529100"), CommMode.MAC, "WriteData") == b""


def _table_20_session(counter: int) -> Session:
    return Session(
        enc_key=H("4CF3CB41A22583A61E89B158D252FC53"),
        mac_key=H("5529860B2FC5FB6154B7F28361D30BF9"),
        ti=H("7614281A"),
        key_no=0,
        counter=counter,
    )


def test_change_key_of_another_key_table_26() -> None:
    session = _table_20_session(counter=2)
    data = change_key_data(session, 2, H("F3847D627727ED3BC9C4CC050489B966"), bytes(16), 1)
    apdu = session.command(0xC4, b"\x02", data, CommMode.FULL)
    assert apdu == H(
        "90C4000029"
        "02"
        "2CF362B7BF4311FF3BE1DAA295E8C68DE09050560D19B9E16C2393AE9CD1FAC7"
        "5D0CE20BCD1D06E6"
        "00"
    )
    assert session.response(H("203BB55D1089D5879100"), CommMode.MAC, "ChangeKey") == b""


def test_change_key_of_the_session_key_table_27() -> None:
    session = _table_20_session(counter=3)
    assert session.command_iv() == H("01602D579423B2797BE8B478B0B4D27B")
    data = change_key_data(session, 0, H("5004BF991F408672B1EF00F08F9E8647"), bytes(16), 1)
    assert data == H("5004BF991F408672B1EF00F08F9E864701")
    apdu = session.command(0xC4, b"\x00", data, CommMode.FULL)
    assert apdu == H(
        "90C4000029"
        "00"
        "C0EB4DEEFEDDF0B513A03A95A75491818580503190D4D05053FF75668A01D6FD"
        "A6610234BDED6432"
        "00"
    )


def test_padding_method_2_always_adds_a_byte() -> None:
    assert pad_m2(b"") == b"\x80" + bytes(15)
    assert len(pad_m2(bytes(16))) == 32
    assert unpad_m2(pad_m2(b"\x01\x80\x00")) == b"\x01\x80\x00"
    with pytest.raises(CardError):
        unpad_m2(bytes(16))


def test_jamcrc_is_the_uninverted_ieee_crc() -> None:
    # The CRC-32 check value of "123456789" is CBF43926; without the final inversion
    # it is 340BC6D9 (the JAMCRC check value), sent least significant byte first.
    assert jamcrc(b"123456789") == H("D9C60B34")


def test_qatysu_file_settings_round_trip() -> None:
    settings = FileSettings(
        CommMode.PLAIN,
        AccessRights(read=0xE, write=0, read_write=0, change=0),
        size=256,
        sdm=SdmSettings(1, 2, 0xF, 0x20, 0x43, 0x43),
    )
    answer = (
        b"\x00"
        + settings.change_data()[:3]
        + (256).to_bytes(3, "little")
        + settings.change_data()[3:]
    )
    assert parse_file_settings(answer) == settings
