"""The NTAG 424 DNA emulator's refusals, as the station meets them."""

from __future__ import annotations

from agent.protocol.ntag424_ev2 import auth_first_command, auth_first_respond
from tests.hardware.ntag424_emu import Ntag424App

SELECT = bytes.fromhex("00A4040C07D276000085010100")


def test_wrong_key_unknown_command_length_and_no_session() -> None:
    app = Ntag424App()
    assert app.apdu(bytes.fromhex("9071000002000000")) == b"\x91\x9d"  # nothing selected
    assert app.apdu(SELECT) == b"\x90\x00"
    first = app.apdu(auth_first_command(0))
    challenge = auth_first_respond(b"\x01" * 16, 0, first, bytes(16))
    assert app.apdu(challenge.command) == b"\x91\xae"  # wrong key
    assert app.apdu(bytes.fromhex("9071000002090000")) == b"\x91\x40"  # no such key
    assert app.apdu(bytes.fromhex("90EE000000")) == b"\x91\x1c"  # unknown command
    assert app.apdu(bytes.fromhex("90F50000020200")) == b"\x91\x7e"  # bad length
    # ChangeKey without a session: authentication error.
    assert app.apdu(bytes.fromhex("90C40000010100")) == b"\x91\xae"
    # The proprietary file needs key 2 to read.
    assert app.apdu(bytes.fromhex("90AD0000070300000000000000")) == b"\x91\xae"
