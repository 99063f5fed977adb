"""NTAG 424 DNA Secure Unique NFC (SUN): the card's own proof of a read, and its keys.

At each read a Qatysu card mirrors two values into its NDEF URL: ``picc`` (AES-CBC,
IV zero, under the SDM meta read key, of 0xC7 ‖ UID ‖ read counter (3 bytes, least
significant first) ‖ 5 random bytes) and ``mac`` (the odd bytes of an AES-CMAC over
the empty string under a session key derived from the SDM file read key, the UID and
the counter). The device copies both into the badge record's ``card`` object; only
the portal, which holds the keys, can check them (docs/cards.md).

The functions here are pure, shared by the reader (parsing the NDEF file), the
personalisation station (the NDEF template) and the portal (checking a read), and
checked against NXP's worked examples in tests/protocol/test_ntag424.py.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

__all__ = [
    "KIND",
    "NDEF_AID",
    "NDEF_FILE_ID",
    "PICC_TAG",
    "PiccData",
    "SunCheck",
    "SunMessage",
    "aes_cmac",
    "card_field",
    "check_sun",
    "decrypt_picc",
    "diversify_key",
    "ndef_url_file",
    "parse_sun_ndef",
    "sdm_mac",
    "sdm_session_mac_key",
    "sun_from_card_field",
]

KIND = "ntag424-sun"
PICC_TAG = 0xC7  # PICCDataTag: UID mirrored (bit 7), counter mirrored (bit 6), UID length 7
NDEF_AID = bytes.fromhex("D2760000850101")  # NFC Forum Type 4 Tag application (DF name)
NDEF_FILE_ID = bytes.fromhex("E104")  # the NDEF file, file number 0x02
KEY_BYTES = 16
PICC_BYTES = 16
MAC_BYTES = 8
UID_BYTES = 7

# The query parameters the personalisation station writes into the URL template and
# the reader looks for: short, so the NDEF file fits one ReadBinary.
QUERY_PICC = "p"
QUERY_MAC = "m"
_HEX = re.compile(r"[0-9A-Fa-f]*")


@dataclass(frozen=True, slots=True)
class SunMessage:
    """What a card mirrored at one read, as bytes."""

    picc: bytes  # 16
    mac: bytes  # 8


@dataclass(frozen=True, slots=True)
class PiccData:
    uid: bytes  # 7
    counter: int  # 0 .. 2**24 - 1


@dataclass(frozen=True, slots=True)
class SunCheck:
    """The portal's verdict on one read's SUN message; ``problem`` is None when it holds."""

    counter: int | None
    problem: str | None  # "malformed" | "undecryptable" | "wrong_uid" | "wrong_mac"

    @property
    def authentic(self) -> bool:
        return self.problem is None


def _aes_cbc_decrypt(key: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def _aes_ecb_encrypt(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-128 CMAC (NIST SP 800-38B), 16 bytes."""
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def decrypt_picc(meta_key: bytes, picc: bytes) -> PiccData | None:
    """The UID and read counter in an encrypted PICCData, or None if it is not one."""
    if len(meta_key) != KEY_BYTES or len(picc) != PICC_BYTES:
        return None
    plain = _aes_cbc_decrypt(meta_key, picc)
    if plain[0] != PICC_TAG:
        return None
    return PiccData(uid=plain[1:8], counter=int.from_bytes(plain[8:11], "little"))


def sdm_session_mac_key(file_key: bytes, uid: bytes, counter: int) -> bytes:
    """SesSDMFileReadMACKey: CMAC under the file read key of 3CC3 0001 0080 ‖ UID ‖ counter."""
    sv2 = bytes.fromhex("3CC300010080") + uid + counter.to_bytes(3, "little")
    return aes_cmac(file_key, sv2)


def sdm_mac(file_key: bytes, uid: bytes, counter: int, mac_input: bytes = b"") -> bytes:
    """The 8-byte SDMMAC: the odd-indexed bytes of the session CMAC over ``mac_input``.

    Qatysu cards put the MAC input offset at the MAC itself, so the input is empty.
    """
    full = aes_cmac(sdm_session_mac_key(file_key, uid, counter), mac_input)
    return full[1::2]


def check_sun(meta_key: bytes, file_key: bytes, uid: bytes, message: SunMessage) -> SunCheck:
    """Whether ``message`` is this card's proof of a read of ``uid``, and its counter.

    The counter's order against earlier reads is the caller's to judge (the portal
    keeps the highest accepted counter per card).
    """
    if len(message.picc) != PICC_BYTES or len(message.mac) != MAC_BYTES:
        return SunCheck(None, "malformed")
    picc = decrypt_picc(meta_key, message.picc)
    if picc is None:
        return SunCheck(None, "undecryptable")
    if picc.uid != uid:
        return SunCheck(picc.counter, "wrong_uid")
    expected = sdm_mac(file_key, picc.uid, picc.counter)
    if not hmac.compare_digest(expected, message.mac):
        return SunCheck(picc.counter, "wrong_mac")
    return SunCheck(picc.counter, None)


def card_field(message: SunMessage) -> dict[str, str]:
    """The badge record's ``card`` object for a SUN read."""
    return {"kind": KIND, "picc": message.picc.hex().upper(), "mac": message.mac.hex().upper()}


def sun_from_card_field(card: object) -> SunMessage | None:
    """The SUN message in a record's ``card`` object, or None when it holds none."""
    if not isinstance(card, Mapping) or card.get("kind") != KIND:
        return None
    picc, mac = card.get("picc"), card.get("mac")
    if not (isinstance(picc, str) and isinstance(mac, str)):
        return None
    if len(picc) != 2 * PICC_BYTES or len(mac) != 2 * MAC_BYTES:
        return None
    if not (_HEX.fullmatch(picc) and _HEX.fullmatch(mac)):
        return None
    return SunMessage(bytes.fromhex(picc), bytes.fromhex(mac))


# NDEF: a Type 4 Tag's NDEF file is NLEN (2 bytes, big-endian) then one NDEF message.
# Qatysu cards hold one short URI record (TNF well-known, type "U").
_URI_PREFIXES = {
    0x00: "",
    0x01: "http://www.",
    0x02: "https://www.",
    0x03: "http://",
    0x04: "https://",
}


def ndef_url_file(base_url: str) -> tuple[bytes, int, int]:
    """The NDEF file a Qatysu card is given, and the offsets of its mirrors in that file.

    ``base_url`` is e.g. ``https://qatysu.kz/c`` (no query). Returns the file contents
    (NLEN included) with zero characters where the card mirrors PICCData (32 hex) and
    the MAC (16 hex), and the file offsets of those two placeholders, which the
    station writes into the file's SDM settings (PICCDataOffset, SDMMACOffset and
    SDMMACInputOffset = SDMMACOffset).
    """
    prefix_code, rest = 0x00, base_url
    for code, prefix in sorted(_URI_PREFIXES.items(), key=lambda item: -len(item[1])):
        if prefix and base_url.startswith(prefix):
            prefix_code, rest = code, base_url[len(prefix) :]
            break
    query_picc = f"?{QUERY_PICC}="
    query_mac = f"&{QUERY_MAC}="
    uri = (rest + query_picc + "0" * 32 + query_mac + "0" * 16).encode("ascii")
    payload = bytes([prefix_code]) + uri
    if len(payload) > 255:
        raise ValueError(f"card URL {base_url!r} is too long for a short NDEF record")
    record = bytes([0xD1, 0x01, len(payload)]) + b"U" + payload  # MB ME SR, TNF 1
    file = len(record).to_bytes(2, "big") + record
    header = 2 + 4 + 1  # NLEN, record header (flags, type length, payload length, type), prefix
    picc_offset = header + len(rest) + len(query_picc)
    mac_offset = picc_offset + 32 + len(query_mac)
    return file, picc_offset, mac_offset


def parse_sun_ndef(file: bytes) -> SunMessage | None:
    """The SUN message in an NDEF file read from a card, or None if it carries none.

    Accepts any short or long URI record whose query has ``p`` (32 hex) and ``m``
    (16 hex); anything else (no NDEF, another record type, a card without SUN) is None.
    """
    if len(file) < 2:
        return None
    nlen = int.from_bytes(file[:2], "big")
    message = file[2 : 2 + nlen]
    if len(message) != nlen or len(message) < 4:
        return None
    flags, type_len = message[0], message[1]
    short = bool(flags & 0x10)
    if flags & 0x07 != 0x01:  # TNF well-known
        return None
    pos = 2
    if short:
        payload_len = message[pos]
        pos += 1
    else:
        if len(message) < pos + 4:
            return None
        payload_len = int.from_bytes(message[pos : pos + 4], "big")
        pos += 4
    if flags & 0x08:  # IL: an id length byte follows
        id_len = message[pos] if pos < len(message) else 0
        pos += 1
    else:
        id_len = 0
    record_type = message[pos : pos + type_len]
    pos += type_len + id_len
    payload = message[pos : pos + payload_len]
    if record_type != b"U" or len(payload) != payload_len or not payload:
        return None
    try:
        uri = _URI_PREFIXES.get(payload[0], "") + payload[1:].decode("ascii")
    except UnicodeDecodeError:
        return None
    _, _, query = uri.partition("?")
    params: dict[str, str] = {}
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        params.setdefault(name, value)
    return sun_from_card_field(
        {"kind": KIND, "picc": params.get(QUERY_PICC), "mac": params.get(QUERY_MAC)}
    )


def _shift_left(block: bytes) -> bytes:
    value = (int.from_bytes(block, "big") << 1) & ((1 << 128) - 1)
    if block[0] & 0x80:
        value ^= 0x87
    return value.to_bytes(16, "big")


def diversify_key(master_key: bytes, diversification_input: bytes) -> bytes:
    """AES-128 key diversification of NXP AN10922 (section 2.2).

    The input M (UID ‖ application id ‖ system identifier, at most 31 bytes) is
    prefixed with 0x01, padded to 32 bytes (0x80 then zeros; subkey K2) unless it
    fills them (subkey K1), and CMAC'd under the master key.
    """
    if len(master_key) != KEY_BYTES:
        raise ValueError("a master key is 16 bytes")
    if not 1 <= len(diversification_input) <= 31:
        raise ValueError("the diversification input is 1 to 31 bytes")
    data = b"\x01" + diversification_input
    k1 = _shift_left(_aes_ecb_encrypt(master_key, bytes(16)))
    if len(data) < 32:
        data += b"\x80" + bytes(31 - len(data))
        subkey = _shift_left(k1)
    else:
        subkey = k1
    last = bytes(a ^ b for a, b in zip(data[16:], subkey, strict=True))
    encryptor = Cipher(algorithms.AES(master_key), modes.CBC(bytes(16))).encryptor()
    return (encryptor.update(data[:16] + last) + encryptor.finalize())[16:]
