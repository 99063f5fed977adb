"""Personalising one NTAG 424 DNA, sans I/O: APDUs through any channel to a card.

Order (docs/decisions/0910-ntag424-key-slots-and-order.md): authenticate with the
factory key 0; write the NDEF URL template; ChangeFileSettings (SDM on, encrypted
PICCData under key 1, MAC under key 2, read free, everything else key 0 only);
change keys 1-4; change key 0 last; read one SUN message back and check it with
the bundle's keys. A power cut before key 0 changes leaves key 0 at the factory
value and the file settings either factory or ours, so :func:`probe` reports the
card as "blank" or "interrupted" and personalising again finishes it (keys 1-4
already changed are recognised by their key version). A cut after key 0 changed
leaves a complete card whose activation is missing: :func:`probe` calls it
"locked", and :func:`finish` proves it is ours with the key 0 the portal gives for
it, then reads its SUN message for the activation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from agent.exceptions import CardNotBlank
from agent.protocol.card_keys import CardKeyBundle
from agent.protocol.ntag424 import (
    NDEF_AID,
    NDEF_FILE_ID,
    SunMessage,
    check_sun,
    ndef_url_file,
    parse_sun_ndef,
)
from agent.protocol.ntag424_ev2 import (
    FREE,
    NEVER,
    AccessRights,
    CardError,
    CommMode,
    FileSettings,
    SdmSettings,
    Session,
    Status,
    auth_first_command,
    auth_first_finish,
    auth_first_respond,
    change_key_data,
    parse_file_settings,
)

__all__ = [
    "Channel",
    "Outcome",
    "finish",
    "inspect",
    "personalise",
    "probe",
    "read_sun",
    "target_settings",
]

FACTORY_KEY = bytes(16)
KEY_VERSION = 1  # the version every key Qatysu sets carries; factory keys are version 0
NDEF_FILE_NO = 2
FACTORY_NDEF = FileSettings(CommMode.PLAIN, AccessRights(FREE, FREE, FREE, 0), 256)


class Channel(Protocol):
    """A card in the field: its anticollision UID and an APDU exchange.

    The whole seam between the station and a reader. ``uid`` is the 7-byte UID from
    anticollision; ``transceive_apdu`` sends one ISO 7816-4 command APDU over ISO-DEP
    and returns the response data followed by its two status bytes. It raises
    :class:`~agent.exceptions.ReaderError` when the card leaves the field. The
    station's MFRC522 implements it (:class:`agent.station.mfrc522.Mfrc522Channel`);
    tests also use ``tests.hardware.ntag424_emu.EmulatedChannel``.
    """

    uid: bytes

    def transceive_apdu(self, command: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    uid: bytes
    sun: SunMessage
    counter: int
    resumed: bool  # an interrupted personalisation was finished


def target_settings(url: str) -> FileSettings:
    """The NDEF file's settings on a Qatysu card with NDEF URL base ``url``."""
    _, picc, mac = ndef_url_file(url)
    return FileSettings(
        CommMode.PLAIN,
        AccessRights(read=FREE, write=0, read_write=0, change=0),
        256,
        SdmSettings(
            meta_read=1,
            file_read=2,
            counter_retrieve=NEVER,
            picc_offset=picc,
            mac_input_offset=mac,
            mac_offset=mac,
        ),
    )


def _iso(channel: Channel, command: bytes, what: str) -> bytes:
    answer = channel.transceive_apdu(command)
    if answer[-2:] != b"\x90\x00":
        raise CardError(f"{what}: card answered {answer[-2:].hex().upper()}")
    return answer[:-2]


def _select_ndef(channel: Channel) -> None:
    answer = channel.transceive_apdu(b"\x00\xa4\x04\x0c\x07" + NDEF_AID + b"\x00")
    if answer[-2:] != b"\x90\x00":
        raise CardNotBlank("no NDEF application: not an NTAG 424 DNA")


def _file_settings_plain(channel: Channel) -> FileSettings | None:
    answer = channel.transceive_apdu(bytes([0x90, 0xF5, 0, 0, 1, NDEF_FILE_NO, 0]))
    if answer[-2:] != b"\x91\x00":
        raise CardNotBlank(
            f"GetFileSettings answered {answer[-2:].hex().upper()}: not an NTAG 424 DNA"
        )
    try:
        return parse_file_settings(answer[:-2])
    except CardError:
        return None


def _authenticate(
    channel: Channel, key: bytes, key_no: int, random: Callable[[int], bytes]
) -> Session | None:
    """A session under ``key``, or None when the card says the key is wrong."""
    first = channel.transceive_apdu(auth_first_command(key_no))
    challenge = auth_first_respond(key, key_no, first, random(16))
    answer = channel.transceive_apdu(challenge.command)
    if answer[-2:] == Status.AUTHENTICATION_ERROR.to_bytes(2, "big"):
        return None
    return auth_first_finish(challenge, answer)


def probe(channel: Channel, url: str, random: Callable[[int], bytes] = os.urandom) -> str:
    """``"blank"``, ``"interrupted"`` (key 0 factory, our settings) or ``"locked"`` (key 0
    changed: finished by us, or somebody else's card; only the portal's key tells).

    Raises :class:`CardNotBlank` for a card with factory key 0 and foreign settings,
    or one that is not an NTAG 424 DNA.
    """
    _select_ndef(channel)
    settings = _file_settings_plain(channel)
    if _authenticate(channel, FACTORY_KEY, 0, random) is None:
        return "locked"
    if settings == FACTORY_NDEF:
        return "blank"
    if settings == target_settings(url):
        return "interrupted"
    raise CardNotBlank("not blank: the NDEF file's settings are neither factory nor ours")


def inspect(channel: Channel, url: str, random: Callable[[int], bytes] = os.urandom) -> str:
    """``"blank"`` or ``"interrupted"``; raise :class:`CardNotBlank` for anything else."""
    state = probe(channel, url, random)
    if state == "locked":
        raise CardNotBlank("not blank: key 0 is not the factory key")
    return state


def finish(
    channel: Channel, bundle: CardKeyBundle, random: Callable[[int], bytes] = os.urandom
) -> Outcome:
    """The outcome of a card whose personalisation was cut after key 0 changed.

    Key 0 changes last, so a card that authenticates with ``bundle``'s key 0 and has
    our file settings is complete: only its SUN message is read back and checked.
    """
    _select_ndef(channel)
    settings = _file_settings_plain(channel)
    if _authenticate(channel, bundle.app_master, 0, random) is None:
        raise CardNotBlank("not blank: key 0 is neither the factory key nor this card's")
    if settings != target_settings(bundle.url):
        raise CardNotBlank("key 0 is this card's but the NDEF file's settings are not ours")
    sun = read_sun(channel)
    check = check_sun(bundle.meta_read, bundle.file_read, channel.uid, sun)
    if not check.authentic or check.counter is None:
        raise CardError(f"the card's SUN message does not check ({check.problem})")
    return Outcome(channel.uid, sun, check.counter, True)


def _run(
    session: Session,
    channel: Channel,
    cmd: int,
    header: bytes,
    data: bytes,
    mode: CommMode,
    answer_mode: CommMode,
    what: str,
) -> bytes:
    apdu = session.command(cmd, header, data, mode)
    return session.response(channel.transceive_apdu(apdu), answer_mode, what)


def personalise(
    channel: Channel, bundle: CardKeyBundle, random: Callable[[int], bytes] = os.urandom
) -> Outcome:
    """Make the card in ``channel`` a Qatysu card with ``bundle``'s keys and URL.

    Raises CardNotBlank for a card that is not blank (or interrupted by this station),
    CardError when the card answers wrongly, and whatever the channel raises when
    the card leaves the field; both of the latter leave a card that can be retried
    as long as key 0 was not yet changed.
    """
    state = inspect(channel, bundle.url, random)
    session = _authenticate(channel, FACTORY_KEY, 0, random)
    if session is None:  # pragma: no cover - inspect just authenticated with it
        raise CardNotBlank("not blank: key 0 is not the factory key")
    ndef, _, _ = ndef_url_file(bundle.url)
    header = bytes([NDEF_FILE_NO]) + bytes(3) + len(ndef).to_bytes(3, "little")
    _run(session, channel, 0x8D, header, ndef, CommMode.PLAIN, CommMode.PLAIN, "WriteData")
    data = target_settings(bundle.url).change_data()
    _run(
        session,
        channel,
        0x5F,
        bytes([NDEF_FILE_NO]),
        data,
        CommMode.FULL,
        CommMode.MAC,
        "ChangeFileSettings",
    )
    new_keys = [bundle.app_master, bundle.meta_read, bundle.file_read, bundle.key3, bundle.key4]
    for key_no in (1, 2, 3, 4):
        version = _run(
            session,
            channel,
            0x64,
            bytes([key_no]),
            b"",
            CommMode.MAC,
            CommMode.MAC,
            "GetKeyVersion",
        )
        # Version 0: still the factory key. Ours: an earlier run changed it already.
        old = FACTORY_KEY if version == b"\x00" else new_keys[key_no]
        change = change_key_data(session, key_no, new_keys[key_no], old, KEY_VERSION)
        _run(
            session,
            channel,
            0xC4,
            bytes([key_no]),
            change,
            CommMode.FULL,
            CommMode.MAC,
            f"ChangeKey {key_no}",
        )
    change = change_key_data(session, 0, bundle.app_master, FACTORY_KEY, KEY_VERSION)
    answer = channel.transceive_apdu(session.command(0xC4, b"\x00", change, CommMode.FULL))
    if answer[-2:] != b"\x91\x00":
        raise CardError(f"ChangeKey 0: card answered {answer[-2:].hex().upper()}")
    sun = read_sun(channel)
    check = check_sun(bundle.meta_read, bundle.file_read, channel.uid, sun)
    if not check.authentic or check.counter is None:
        raise CardError(f"the card's first SUN message does not check ({check.problem})")
    return Outcome(channel.uid, sun, check.counter, state == "interrupted")


def read_sun(channel: Channel) -> SunMessage:
    """Select the NDEF file, read it as a phone would, return its SUN message."""
    _select_ndef(channel)
    _iso(channel, b"\x00\xa4\x00\x0c\x02" + NDEF_FILE_ID, "ISOSelectFile E104")
    nlen = int.from_bytes(_iso(channel, b"\x00\xb0\x00\x00\x02", "ReadBinary"), "big")
    message = _iso(channel, b"\x00\xb0\x00\x02" + bytes([nlen]), "ReadBinary")
    sun = parse_sun_ndef(nlen.to_bytes(2, "big") + message)
    if sun is None:
        raise CardError("the NDEF file carries no SUN message")
    return sun
