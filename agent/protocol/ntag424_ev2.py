"""NTAG 424 DNA EV2 secure messaging: what a trusted station needs to personalise a card.

The personalisation station (agent/station) authenticates to a factory-blank card
with AuthenticateEV2First, then sends ChangeFileSettings and ChangeKey in
CommMode.Full: data encrypted (AES-CBC under SesAuthENCKey, IV derived from the
transaction identifier TI and the command counter) and MAC'd (truncated AES-CMAC
under SesAuthMACKey over Cmd ‖ CmdCtr ‖ TI ‖ header ‖ data). Everything here is
pure: the station turns these bytes into APDUs on a reader, the test emulator of
the card (tests/hardware/ntag424_emu.py) answers them with its own code, and both
are anchored on NXP's worked examples in tests/protocol/test_ntag424_ev2.py
(application note AN12196).

The command counter counts every command sent in an authenticated session, plain
ones included; the response MAC and IV use the counter after the command.
"""

from __future__ import annotations

import hmac
import zlib
from dataclasses import dataclass, field
from enum import IntEnum

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from agent.protocol.ntag424 import aes_cmac

__all__ = [
    "AccessRights",
    "AuthChallenge",
    "CardError",
    "CommMode",
    "FileSettings",
    "SdmSettings",
    "Session",
    "Status",
    "auth_first_command",
    "auth_first_finish",
    "auth_first_respond",
    "change_key_data",
    "cmac_t",
    "jamcrc",
    "pad_m2",
    "parse_file_settings",
    "rotate_left",
    "session_keys",
    "unpad_m2",
]

FREE = 0xE  # an access condition: anyone
NEVER = 0xF  # an access condition: nobody


class Status(IntEnum):
    """The card's status words (SW1 SW2) the station tells apart."""

    OK = 0x9100
    ISO_OK = 0x9000
    ADDITIONAL_FRAME = 0x91AF
    ILLEGAL_COMMAND = 0x911C
    INTEGRITY_ERROR = 0x911E
    NO_SUCH_KEY = 0x9140
    LENGTH_ERROR = 0x917E
    PERMISSION_DENIED = 0x919D
    PARAMETER_ERROR = 0x919E
    AUTHENTICATION_DELAY = 0x91AD
    AUTHENTICATION_ERROR = 0x91AE
    BOUNDARY_ERROR = 0x91BE
    COMMAND_ABORTED = 0x91CA
    FILE_NOT_FOUND = 0x91F0


class CardError(Exception):
    """The card answered with an error status, or an answer that does not check."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CommMode(IntEnum):
    PLAIN = 0
    MAC = 1
    FULL = 3


def _aes_cbc(key: bytes, iv: bytes, data: bytes, *, encrypt: bool) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    op = cipher.encryptor() if encrypt else cipher.decryptor()
    return op.update(data) + op.finalize()


def rotate_left(data: bytes) -> bytes:
    """RndA' / RndB': the 16 bytes rotated left by one byte."""
    return data[1:] + data[:1]


def cmac_t(key: bytes, data: bytes) -> bytes:
    """MACt: the odd-indexed bytes (1, 3, ... 15) of the AES-CMAC, 8 bytes."""
    return aes_cmac(key, data)[1::2]


def pad_m2(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 0x80 then zeros to a whole block, always added."""
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % 16)


def unpad_m2(data: bytes) -> bytes:
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= 16:
        raise CardError("encrypted response is not padded with ISO/IEC 9797-1 method 2")
    return stripped[:-1]


def jamcrc(data: bytes) -> bytes:
    """CRC32 as the card wants it in ChangeKey: the IEEE CRC without its final inversion
    (sometimes called JAMCRC), least significant byte first."""
    return ((~zlib.crc32(data)) & 0xFFFFFFFF).to_bytes(4, "little")


# --- AuthenticateEV2First ------------------------------------------------------------


def auth_first_command(key_no: int) -> bytes:
    """Part 1: ask the card for its challenge under key ``key_no`` (no PCDcap2)."""
    return bytes([0x90, 0x71, 0x00, 0x00, 0x02, key_no, 0x00, 0x00])


@dataclass(frozen=True, slots=True)
class AuthChallenge:
    """What the station holds between the two parts of AuthenticateEV2First."""

    key: bytes
    key_no: int
    rnd_a: bytes
    rnd_b: bytes
    command: bytes  # the part 2 APDU to send


def auth_first_respond(key: bytes, key_no: int, response: bytes, rnd_a: bytes) -> AuthChallenge:
    """Part 2: decrypt the card's RndB and answer E(K, RndA ‖ RndB')."""
    _check_status(response, Status.ADDITIONAL_FRAME, "AuthenticateEV2First")
    if len(response) != 18:
        raise CardError(f"AuthenticateEV2First: {len(response) - 2} bytes of challenge, not 16")
    if len(rnd_a) != 16:
        raise ValueError("RndA is 16 bytes")
    rnd_b = _aes_cbc(key, bytes(16), response[:16], encrypt=False)
    token = _aes_cbc(key, bytes(16), rnd_a + rotate_left(rnd_b), encrypt=True)
    command = bytes([0x90, 0xAF, 0x00, 0x00, 0x20]) + token + b"\x00"
    return AuthChallenge(key, key_no, rnd_a, rnd_b, command)


def session_keys(key: bytes, rnd_a: bytes, rnd_b: bytes) -> tuple[bytes, bytes]:
    """SesAuthENCKey and SesAuthMACKey: CMAC under the key of SV1 and SV2."""
    mixed = rnd_a[:2] + bytes(a ^ b for a, b in zip(rnd_a[2:8], rnd_b[:6], strict=True))
    context = b"\x00\x01\x00\x80" + mixed + rnd_b[6:] + rnd_a[8:]
    return aes_cmac(key, b"\xa5\x5a" + context), aes_cmac(key, b"\x5a\xa5" + context)


def auth_first_finish(challenge: AuthChallenge, response: bytes) -> Session:
    """Check the card's answer (it must return our RndA rotated) and open the session."""
    if len(response) >= 2 and int.from_bytes(response[-2:], "big") == Status.AUTHENTICATION_ERROR:
        raise CardError("authentication refused: wrong key", Status.AUTHENTICATION_ERROR)
    _check_status(response, Status.OK, "AuthenticateEV2First part 2")
    if len(response) != 34:
        raise CardError(f"AuthenticateEV2First part 2: {len(response) - 2} bytes, not 32")
    plain = _aes_cbc(challenge.key, bytes(16), response[:32], encrypt=False)
    ti, rnd_a_rotated = plain[:4], plain[4:20]
    if not hmac.compare_digest(rnd_a_rotated, rotate_left(challenge.rnd_a)):
        raise CardError("AuthenticateEV2First: the card did not prove it holds the key")
    enc, mac = session_keys(challenge.key, challenge.rnd_a, challenge.rnd_b)
    return Session(enc_key=enc, mac_key=mac, ti=ti, key_no=challenge.key_no)


def _check_status(response: bytes, expected: int, what: str) -> None:
    if len(response) < 2:
        raise CardError(f"{what}: answer too short")
    status = int.from_bytes(response[-2:], "big")
    if status != expected:
        name = Status(status).name if status in Status._value2member_map_ else "unknown"
        raise CardError(f"{what}: card answered {status:04X} ({name})", status)


# --- secure messaging ----------------------------------------------------------------


@dataclass(slots=True)
class Session:
    """An authenticated EV2 session: its keys, TI and command counter."""

    enc_key: bytes
    mac_key: bytes
    ti: bytes
    key_no: int = 0
    counter: int = field(default=0)

    def _iv(self, label: bytes, counter: int) -> bytes:
        block = label + self.ti + counter.to_bytes(2, "little") + bytes(8)
        return _aes_cbc(self.enc_key, bytes(16), block, encrypt=True)

    def command_iv(self) -> bytes:
        """IVc: E(SesAuthENCKey, A5 5A ‖ TI ‖ CmdCtr ‖ 8 zeros)."""
        return self._iv(b"\xa5\x5a", self.counter)

    def response_iv(self) -> bytes:
        """IVr: E(SesAuthENCKey, 5A A5 ‖ TI ‖ CmdCtr+1 ‖ 8 zeros)."""
        return self._iv(b"\x5a\xa5", self.counter + 1)

    def command_mac(self, cmd: int, header: bytes, data: bytes) -> bytes:
        body = bytes([cmd]) + self.counter.to_bytes(2, "little") + self.ti + header + data
        return cmac_t(self.mac_key, body)

    def command(self, cmd: int, header: bytes, data: bytes, mode: CommMode) -> bytes:
        """The APDU for ``cmd`` in ``mode`` at the current counter (not yet counted)."""
        if mode is CommMode.FULL and data:
            data = _aes_cbc(self.enc_key, self.command_iv(), pad_m2(data), encrypt=True)
        tail = b"" if mode is CommMode.PLAIN else self.command_mac(cmd, header, data)
        body = header + data + tail
        if len(body) > 255:
            raise ValueError("command too long for a short APDU")
        return bytes([0x90, cmd, 0x00, 0x00, len(body)]) + body + b"\x00"

    def response(self, response: bytes, mode: CommMode, what: str) -> bytes:
        """Check a response to the command just sent, count it, return its plain data."""
        if len(response) < 2:
            raise CardError(f"{what}: answer too short")
        status = int.from_bytes(response[-2:], "big")
        if status != Status.OK:
            # The card ends the session on an error; the counter no longer matters.
            _check_status(response, Status.OK, what)
        body = response[:-2]
        if mode is CommMode.PLAIN:
            self.counter += 1
            return body
        if len(body) < 8:
            raise CardError(f"{what}: answer carries no MAC")
        data, mac = body[:-8], body[-8:]
        expected = cmac_t(
            self.mac_key,
            bytes([status & 0xFF]) + (self.counter + 1).to_bytes(2, "little") + self.ti + data,
        )
        if not hmac.compare_digest(mac, expected):
            raise CardError(f"{what}: the answer's MAC does not check")
        if mode is CommMode.FULL and data:
            if len(data) % 16:
                raise CardError(f"{what}: encrypted answer is not whole blocks")
            data = unpad_m2(_aes_cbc(self.enc_key, self.response_iv(), data, encrypt=False))
        self.counter += 1
        return data


def change_key_data(
    session: Session, key_no: int, new_key: bytes, old_key: bytes, version: int
) -> bytes:
    """ChangeKey's plain data: the new key itself when it is the session's key, else
    new XOR old with the CRC of the new key, so the card can tell a wrong old key."""
    if len(new_key) != 16 or len(old_key) != 16:
        raise ValueError("AES keys are 16 bytes")
    if key_no == session.key_no:
        return new_key + bytes([version])
    xored = bytes(a ^ b for a, b in zip(new_key, old_key, strict=True))
    return xored + bytes([version]) + jamcrc(new_key)


# --- file settings -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessRights:
    """Key numbers 0-4, FREE (0xE) or NEVER (0xF) for each kind of access."""

    read: int
    write: int
    read_write: int
    change: int

    def encode(self) -> bytes:
        return bytes([(self.read_write << 4) | self.change, (self.read << 4) | self.write])

    @classmethod
    def decode(cls, data: bytes) -> AccessRights:
        return cls(
            read=data[1] >> 4, write=data[1] & 0xF, read_write=data[0] >> 4, change=data[0] & 0xF
        )


@dataclass(frozen=True, slots=True)
class SdmSettings:
    """Secure Dynamic Messaging as Qatysu uses it: UID and counter mirrored inside an
    encrypted PICCData, a MAC over nothing (input offset = MAC offset), ASCII mirrors."""

    meta_read: int  # key encrypting PICCData (0-4), FREE for plain mirrors, NEVER for none
    file_read: int  # key under which the MAC is made (0-4), NEVER for no MAC
    counter_retrieve: int  # GetFileCounters access
    picc_offset: int
    mac_input_offset: int
    mac_offset: int
    options: int = 0xC1  # UID mirror, read counter mirror, ASCII encoding

    def encode(self) -> bytes:
        rights = bytes([0xF0 | self.counter_retrieve, (self.meta_read << 4) | self.file_read])
        out = bytes([self.options]) + rights
        if self.meta_read <= 4:
            out += self.picc_offset.to_bytes(3, "little")
        if self.file_read <= 4:
            out += self.mac_input_offset.to_bytes(3, "little")
            out += self.mac_offset.to_bytes(3, "little")
        return out


@dataclass(frozen=True, slots=True)
class FileSettings:
    comm_mode: CommMode
    access: AccessRights
    size: int = 0  # as GetFileSettings reports it; not sent by ChangeFileSettings
    sdm: SdmSettings | None = None

    def change_data(self) -> bytes:
        """ChangeFileSettings data (after the file number)."""
        option = int(self.comm_mode) | (0x40 if self.sdm else 0)
        out = bytes([option]) + self.access.encode()
        return out + (self.sdm.encode() if self.sdm else b"")


def parse_file_settings(data: bytes) -> FileSettings:
    """GetFileSettings' answer for a standard data file, SDM settings included.

    Only the SDM layouts a Qatysu card can have are parsed in full (no plain UID or
    counter mirror, no encrypted file data); others raise CardError, which the station
    treats as "not a card we made".
    """
    if len(data) < 7 or data[0] != 0x00:
        raise CardError("GetFileSettings: not a standard data file")
    option = data[1]
    comm = option & 0x03
    if comm not in (0, 1, 3):
        raise CardError(f"GetFileSettings: communication mode {comm} unknown")
    access = AccessRights.decode(data[2:4])
    size = int.from_bytes(data[4:7], "little")
    if not option & 0x40:
        if len(data) != 7:
            raise CardError("GetFileSettings: trailing bytes after a file without SDM")
        return FileSettings(CommMode(comm), access, size)
    if len(data) < 10:
        raise CardError("GetFileSettings: SDM settings cut short")
    options, ctr_rights, read_rights = data[7], data[8], data[9]
    meta_read, file_read = read_rights >> 4, read_rights & 0xF
    if options & 0x30 or options & 0x0E or meta_read == FREE:
        raise CardError("GetFileSettings: SDM layout not one Qatysu writes")
    pos, offsets = 10, []
    count = (1 if meta_read <= 4 else 0) + (2 if file_read <= 4 else 0)
    for _ in range(count):
        if len(data) < pos + 3:
            raise CardError("GetFileSettings: SDM offsets cut short")
        offsets.append(int.from_bytes(data[pos : pos + 3], "little"))
        pos += 3
    if pos != len(data):
        raise CardError("GetFileSettings: trailing bytes after the SDM offsets")
    picc = offsets.pop(0) if meta_read <= 4 else 0
    mac_input, mac = (offsets[0], offsets[1]) if file_read <= 4 else (0, 0)
    sdm = SdmSettings(meta_read, file_read, ctr_rights & 0xF, picc, mac_input, mac, options)
    return FileSettings(CommMode(comm), access, size, sdm)
