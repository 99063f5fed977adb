"""ISO/IEC 14443-3 type A card activation, without I/O.

:func:`activate` is a generator in the style of httpx's ``auth_flow``: it
yields the :class:`Frame` to send and receives the :class:`Reply` (or ``None``
when the chip's timer expired with no answer), and returns an
:class:`Activated` card or a :class:`NotActivated` reason. The MFRC522 shell
does the register work; this module knows the protocol: REQA/WUPA, the
bit-oriented anticollision loop with the collision position the chip reports,
SELECT with CRC_A, the check byte (BCC), cascade levels 1-3 driven by the SAK
"UID not complete" bit, and HLTA.

The UID that comes out is the card's real UID bytes (4, 7 or 10), never the
cascade tag nor a check byte. Every level ends with a SELECT that only a card
holding exactly those 40 bits answers with a CRC-correct SAK, so a garbled or
mis-resolved anticollision can cost a read but never yield a wrong UID.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

__all__ = [
    "CASCADE_TAG",
    "HLTA_FRAME",
    "REQA",
    "SAK_ISO14443_4",
    "SAK_UID_INCOMPLETE",
    "WUPA",
    "Activated",
    "ActivationFlow",
    "Frame",
    "NotActivated",
    "Reply",
    "activate",
    "bcc",
    "cascade_levels",
    "crc_a",
]

REQA = 0x26
WUPA = 0x52
HLTA = bytes((0x50, 0x00))
SEL_CODES = (0x93, 0x95, 0x97)  # cascade levels 1, 2, 3
NVB_SELECT = 0x70  # all 40 bits (4 UID bytes + BCC) follow
CASCADE_TAG = 0x88
SAK_UID_INCOMPLETE = 0x04
SAK_ISO14443_4 = 0x20  # the card speaks ISO 14443-4 (answers RATS)
CL_BITS = 40  # a cascade level's UID bytes (4) + BCC (1)
UID_LENGTHS = (4, 7, 10)


def crc_a(data: bytes) -> bytes:
    """CRC_A of ISO 14443-3 (preset 0x6363, reflected x^16+x^12+x^5+1), LSB first."""
    crc = 0x6363
    for byte in data:
        b = (byte ^ crc) & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = ((crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)) & 0xFFFF
    return bytes((crc & 0xFF, crc >> 8))


def bcc(data: bytes | bytearray) -> int:
    """The check byte: XOR of the 4 UID bytes of one cascade level."""
    value = 0
    for byte in data:
        value ^= byte
    return value


def cascade_levels(uid: bytes) -> list[bytes]:
    """The 4 bytes each cascade level carries for ``uid`` (cascade tag included)."""
    if len(uid) == 4:
        return [uid]
    if len(uid) == 7:
        return [bytes((CASCADE_TAG,)) + uid[:3], uid[3:]]
    if len(uid) == 10:
        return [bytes((CASCADE_TAG,)) + uid[:3], bytes((CASCADE_TAG,)) + uid[3:6], uid[6:]]
    raise ValueError(f"an ISO 14443-A UID has 4, 7 or 10 bytes, not {len(uid)}")


@dataclass(frozen=True)
class Frame:
    """What to transmit. ``tx_last_bits``: valid bits of the last byte (0 = 8)."""

    data: bytes
    tx_last_bits: int = 0
    rx_align: int = 0  # bit position where the first received bit lands
    reply_expected: bool = True
    # How long the answer may take to start after the frame, None for the short
    # wait of activation (every ISO 14443-3 answer starts within 0.1 ms); ISO-DEP
    # frames carry the card's frame waiting time.
    timeout_s: float | None = None
    guard_s: float = 0.0  # quiet time needed before sending (the card's SFGT after ATS)
    # The answer's likely length (CRC included), so the shell can wait once for it
    # instead of looking again and again; 0 when unknown. Only a hint.
    expect_bytes: int = 0


HLTA_FRAME = Frame(HLTA + crc_a(HLTA), reply_expected=False)


@dataclass(frozen=True)
class Reply:
    """What the chip received, as its FIFO, ControlReg, ErrorReg and CollReg say.

    ``collision_at`` is the chip's CollPos: the 1-based position of the first
    collided bit counted from bit 0 of the first FIFO byte (so the RxAlign
    offset is included); ``None`` when the chip said the position is not valid.
    """

    data: bytes
    last_bits: int = 0  # valid bits in the last byte (0 = all 8)
    collision: bool = False
    collision_at: int | None = None
    parity_error: bool = False  # or a bad start of frame: the bits are not to be trusted
    crc_error: bool = False
    overflow: bool = False  # the frame was longer than the chip's FIFO: the tail is lost


@dataclass(frozen=True)
class Activated:
    uid: bytes
    sak: int
    atqa: bytes

    @property
    def uid_hex(self) -> str:
        return self.uid.hex().upper()


@dataclass(frozen=True)
class NotActivated:
    reason: str
    card_answered: bool  # something answered REQA/WUPA: a card is in the field


ActivationFlow = Generator[Frame, "Reply | None", "Activated | NotActivated"]


def activate(*, wake: bool = True, halt: bool = True) -> ActivationFlow:
    """Wake (WUPA) or request (REQA), resolve every cascade level, select, halt.

    With several cards in the field the anticollision follows the 1 at each
    collided bit, so the same card wins every time it is in the field. With
    ``halt=False`` the card stays selected (ACTIVE) for what comes next: RATS
    for an ISO 14443-4 card, or :data:`HLTA_FRAME` from the caller.
    """
    reply = yield Frame(bytes((WUPA if wake else REQA,)), tx_last_bits=7)
    if reply is None:
        return NotActivated("no card", card_answered=False)
    atqa = reply.data  # may be a superposition of several ATQAs: informative only
    uid = bytearray()
    for level, sel in enumerate(SEL_CODES):
        resolved = yield from _anticollision(sel)
        if isinstance(resolved, NotActivated):
            return resolved
        frame = bytes((sel, NVB_SELECT)) + resolved
        reply = yield Frame(frame + crc_a(frame))
        sak = _sak(reply)
        if isinstance(sak, NotActivated):
            return sak
        if sak & SAK_UID_INCOMPLETE:
            if resolved[0] != CASCADE_TAG or level == len(SEL_CODES) - 1:
                return NotActivated(f"SAK 0x{sak:02X} asks for another level", True)
            uid += resolved[1:4]
            continue
        uid += resolved[:4]
        if halt:
            yield HLTA_FRAME
        return Activated(bytes(uid), sak, atqa)
    raise AssertionError("unreachable: the last level either completes or returns")


def _sak(reply: Reply | None) -> int | NotActivated:
    if reply is None:
        return NotActivated("no answer to SELECT", True)
    if reply.collision or reply.parity_error or reply.crc_error or reply.overflow:
        return NotActivated("garbled SAK (several cards answered SELECT?)", True)
    if len(reply.data) != 3 or reply.last_bits != 0:
        return NotActivated(f"SAK of {len(reply.data)} bytes", True)
    if crc_a(reply.data[:1]) != reply.data[1:]:
        return NotActivated("SAK fails CRC_A", True)
    return reply.data[0]


def _anticollision(sel: int) -> Generator[Frame, Reply | None, bytes | NotActivated]:
    """Resolve the 40 bits of one cascade level; returns UID bytes + BCC."""
    known = bytearray(5)
    count = 0  # bits of the level already known, LSB first in each byte
    for _ in range(CL_BITS):  # each round fixes at least one more bit
        whole, extra = divmod(count, 8)
        nvb = ((2 + whole) << 4) | extra
        sent = known[: whole + (1 if extra else 0)]
        reply = yield Frame(bytes((sel, nvb)) + sent, tx_last_bits=extra, rx_align=extra)
        if reply is None:
            return NotActivated("no answer to ANTICOLLISION", True)
        if reply.collision:
            if reply.collision_at is None:
                return NotActivated("collision at a position the chip could not give", True)
            at = whole * 8 + reply.collision_at - 1  # absolute bit index in the level
            if not count <= at < CL_BITS - 8:
                return NotActivated(f"collision at bit {at} makes no progress", True)
            _merge(known, reply.data, whole, count, at)
            known[at // 8] |= 1 << (at % 8)  # follow the card that sent a 1
            count = at + 1
            continue
        if reply.parity_error or reply.crc_error or reply.overflow:
            return NotActivated("garbled ANTICOLLISION answer", True)
        if whole + len(reply.data) != 5 or reply.last_bits != 0:
            return NotActivated("ANTICOLLISION answer of the wrong length", True)
        _merge(known, reply.data, whole, count, CL_BITS)
        if bcc(known[:4]) != known[4]:
            return NotActivated("check byte (BCC) mismatch", True)
        return bytes(known)
    return NotActivated("anticollision did not converge", True)


def _merge(known: bytearray, data: bytes, first_byte: int, start: int, stop: int) -> None:
    """Copy bits [start, stop) of the level from the received FIFO bytes."""
    for bit in range(start, stop):
        index = bit // 8 - first_byte
        if index >= len(data):
            break
        mask = 1 << (bit % 8)
        if data[index] & mask:
            known[bit // 8] |= mask
        else:
            known[bit // 8] &= ~mask & 0xFF
