"""ISO/IEC 14443-4 (ISO-DEP) for a reader, without I/O, and ISO 7816-4 APDUs on top.

The style is :mod:`agent.readers.iso14443`'s: every exchange is a generator that
yields the :class:`~agent.readers.iso14443.Frame` to send (CRC_A appended here,
with the timeout to wait for the answer) and is sent the
:class:`~agent.readers.iso14443.Reply` (or ``None`` when the timer ran out). The
MFRC522 shell only moves bytes; this module knows the protocol:

* :meth:`IsoDep.rats`: RATS with our FSDI (CID 0, no NAD), the ATS's FSCI ->
  FSC, FWI -> frame waiting time, SFGI -> guard time before the next frame;
* :meth:`IsoDep.exchange`: one APDU as I-blocks with block-number toggling,
  chaining in both directions (frames never longer than ``min(FSC, link)``
  where ``link`` is what the chip's FIFO holds, 64 bytes with CRC on an
  MFRC522), R(ACK)/R(NAK) recovery after ISO/IEC 14443-4 section 7.5.4 with a
  bounded number of retries, S(WTX) answered with the same WTXM and the longer
  timeout for the next answer only;
* :meth:`IsoDep.deselect`: S(DESELECT), the card goes to HALT.

A failure that the rules cannot recover is :class:`IsoDepError`, raised out of
the generator; the caller falls back (the door reader reads by UID).

The block formats (PCB, the first byte): I-block ``0x02 | bn`` (``0x10``
chaining), R-block ``0xA2 | bn`` ACK and ``0xB2 | bn`` NAK, S-blocks ``0xC2``
DESELECT and ``0xF2`` WTX. Reader-side rules used below: the block number
starts at 0; an I-block or R(ACK) carrying the current number toggles it
(rule B), so the R(ACK) that asks for the card's next chained block carries
the toggled number.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TypeVar

from agent.protocol.ntag424 import NDEF_AID, NDEF_FILE_ID
from agent.readers.iso14443 import Frame, Reply, crc_a

__all__ = [
    "FS_TABLE",
    "SW_OK",
    "Ats",
    "Flow",
    "IsoDep",
    "IsoDepError",
    "Response",
    "fwt_s",
    "parse_ats",
    "parse_response",
    "read_binary",
    "read_ndef_file",
    "select_by_name",
    "select_file",
]

FC_HZ = 13.56e6
FS_TABLE = (16, 24, 32, 40, 48, 64, 96, 128, 256)  # FSDI/FSCI -> frame size, CRC included
RATS = 0xE0
PCB_I = 0x02
PCB_CHAINING = 0x10
PCB_BLOCK_NUMBER = 0x01
PCB_R_ACK = 0xA2
PCB_R_NAK = 0xB2
PCB_S_DESELECT = 0xC2
PCB_S_WTX = 0xF2
PCB_CID_NAD = 0x0C  # a CID or NAD byte follows the PCB: we use neither
FWI_DEFAULT = 4
FWT_MAX_S = 256 * 16 * (1 << 14) / FC_HZ  # FWI 14, 4.949 s
# The answer to RATS and to S(DESELECT) must start within 65536/fc (ISO 14443-4, 5.1
# and 8); every waiting time gets the standard's delta 49152/fc on top.
ACTIVATION_FWT_S = 65536 / FC_HZ
DELTA_FWT_S = 49152 / FC_HZ
FRAME_OVERHEAD = 3  # PCB + CRC_A
SW_OK = 0x9000
SW_END_OF_FILE = 0x6282

_T = TypeVar("_T")
Flow = Generator[Frame, Reply | None, _T]  # an exchange: frames out, replies in, a result


class IsoDepError(Exception):
    """The card could not be talked to by the block protocol's rules; ``str`` says why."""


def fwt_s(fwi: int) -> float:
    """The frame waiting time of FWI ``fwi``: 256 * 16 * 2**FWI / fc."""
    return 256 * 16 * (1 << fwi) / FC_HZ


@dataclass(frozen=True)
class Ats:
    """What an ATS says, with the standard's defaults for absent interface bytes."""

    raw: bytes  # TL .. historical bytes, CRC removed
    fsc: int  # the largest frame the card accepts, CRC included
    fwi: int
    sfgi: int
    cid_supported: bool
    nad_supported: bool
    historical: bytes

    @property
    def fwt_s(self) -> float:
        return fwt_s(self.fwi)

    @property
    def sfgt_s(self) -> float:
        """Guard time the card needs after its ATS before the next frame (0 if SFGI 0)."""
        return fwt_s(self.sfgi) if self.sfgi else 0.0


def parse_ats(ats: bytes) -> Ats:
    """Parse an ATS (CRC already checked and removed); raises IsoDepError if malformed."""
    if not ats or ats[0] != len(ats) or len(ats) < 1:
        raise IsoDepError(f"ATS length byte {ats[:1].hex() or 'missing'} for {len(ats)} bytes")
    fsci, fwi, sfgi, tc = 2, FWI_DEFAULT, 0, 0x02  # defaults: FSC 32, FWI 4, CID supported
    pos = 2
    if len(ats) > 1:
        t0 = ats[1]
        fsci = t0 & 0x0F
        for present in (0x10, 0x20, 0x40):  # TA, TB, TC
            if not t0 & present:
                continue
            if pos >= len(ats):
                raise IsoDepError("ATS announces an interface byte it does not carry")
            value = ats[pos]
            pos += 1
            if present == 0x20:
                fwi, sfgi = value >> 4, value & 0x0F
            elif present == 0x40:
                tc = value
            # TA (bit rates): we stay at 106 kbit/s, which every card supports.
    if fwi == 15:  # RFU: the standard says to read it as the default
        fwi = FWI_DEFAULT
    if sfgi == 15:
        sfgi = 0
    return Ats(
        raw=bytes(ats),
        fsc=FS_TABLE[min(fsci, len(FS_TABLE) - 1)],
        fwi=fwi,
        sfgi=sfgi,
        cid_supported=bool(tc & 0x02),
        nad_supported=bool(tc & 0x01),
        historical=bytes(ats[pos:]),
    )


class IsoDep:
    """One card's ISO-DEP session, from RATS to DESELECT.

    ``link_max_frame`` is the longest frame (CRC included) the reader chip can
    send or receive in one go: 64 for the MFRC522's FIFO. The FSD we announce
    is the largest standard size that fits it, and frames we send are never
    longer than ``min(FSC, link_max_frame)``. ``max_retries`` bounds the error
    recovery of one block, ``max_wtx`` the waiting-time extensions within one
    APDU, and ``max_wait_s`` caps every timeout (the door reader uses a short
    cap so a card with a huge FWI cannot hold the door; the standard's cap is
    FWT_MAX_S).
    """

    def __init__(
        self,
        *,
        link_max_frame: int = 64,
        max_retries: int = 2,
        max_wtx: int = 8,
        max_wait_s: float = FWT_MAX_S + DELTA_FWT_S,
    ) -> None:
        fitting = [i for i, size in enumerate(FS_TABLE) if size <= link_max_frame]
        if not fitting:
            raise ValueError(f"a link of {link_max_frame} bytes cannot carry ISO-DEP frames")
        self.fsdi = fitting[-1]
        self.fsd = FS_TABLE[self.fsdi]
        self.link_max_frame = link_max_frame
        self.max_retries = max_retries
        self.max_wtx = max_wtx
        self.max_wait_s = max_wait_s
        self.ats: Ats | None = None
        self.block_number = 0
        self._guard_s = 0.0

    @property
    def active(self) -> bool:
        return self.ats is not None

    @property
    def max_frame(self) -> int:
        """The longest frame we send, CRC included."""
        fsc = self.ats.fsc if self.ats is not None else FS_TABLE[2]
        return min(fsc, self.link_max_frame)

    @property
    def max_read_chunk(self) -> int:
        """The most data one READ BINARY can ask for and get back in one frame."""
        return self.fsd - FRAME_OVERHEAD - 2  # the status word rides in the same block

    @property
    def frame_timeout_s(self) -> float:
        assert self.ats is not None
        return min(self.ats.fwt_s + DELTA_FWT_S, self.max_wait_s)

    # -- activation and deactivation ---------------------------------------------

    def rats(self) -> Flow[Ats]:
        """Send RATS (retried once, as the standard allows), parse the ATS."""
        command = bytes((RATS, self.fsdi << 4))  # CID 0
        timeout = min(ACTIVATION_FWT_S + DELTA_FWT_S, self.max_wait_s)
        problem = "no answer to RATS"
        for _ in range(2):
            reply = yield _frame(command, timeout)
            block = _checked(reply, self.fsd)
            if isinstance(block, bytes):
                ats = parse_ats(block)
                self.ats = ats
                self.block_number = 0  # rule A
                self._guard_s = ats.sfgt_s
                return ats
            problem = block if reply is not None else problem
        raise IsoDepError(problem)

    def deselect(self) -> Flow[bool]:
        """S(DESELECT), retried once (rule 8); True when the card confirmed it."""
        if self.ats is None:
            return False
        timeout = min(ACTIVATION_FWT_S + DELTA_FWT_S, self.max_wait_s)
        try:
            for _ in range(2):
                reply = yield self._frame(bytes((PCB_S_DESELECT,)), timeout)
                if _checked(reply, self.fsd) == bytes((PCB_S_DESELECT,)):
                    return True
            return False
        finally:
            self.ats = None

    # -- the block protocol -------------------------------------------------------

    def exchange(self, apdu: bytes, *, expect: int = 2) -> Flow[bytes]:
        """Send one command APDU, return the card's whole response APDU.

        ``expect`` is the response's likely length (2: a status word alone), a hint
        for the frames' ``expect_bytes``.
        """
        if self.ats is None:
            raise IsoDepError("no ISO-DEP session: RATS first")
        if not apdu:
            raise ValueError("an empty APDU")
        room = self.max_frame - FRAME_OVERHEAD
        pieces = [apdu[i : i + room] for i in range(0, len(apdu), room)]
        index = 0
        last_i_block = self._i_block(pieces[0], chaining=len(pieces) > 1)
        to_send = last_i_block
        receiving = False  # the card is chaining its answer to us
        response = bytearray()
        errors = 0
        wtx = 0
        timeout = self.frame_timeout_s
        while True:
            answer = min(expect - len(response), self.fsd - FRAME_OVERHEAD) + FRAME_OVERHEAD
            reply = yield self._frame(to_send, timeout, max(answer, FRAME_OVERHEAD))
            timeout = self.frame_timeout_s  # a WTX extends one wait only
            block = _checked(reply, self.fsd)
            problem: str | None = None
            if isinstance(block, str):
                problem = block if reply is not None else "no answer within the frame waiting time"
            else:
                pcb = block[0]
                if pcb & 0xE2 == 0x02 and not pcb & PCB_CID_NAD:  # I-block
                    if index < len(pieces) - 1:
                        problem = "an I-block while we were still chaining"
                    elif pcb & PCB_BLOCK_NUMBER != self.block_number:
                        problem = "an I-block with the wrong block number"
                    else:
                        self.block_number ^= 1  # rule B
                        errors = 0
                        response += block[1:]
                        if not pcb & PCB_CHAINING:
                            return bytes(response)
                        receiving = True
                        to_send = self._r_block(ack=True)  # rule 2
                        continue
                elif pcb & 0xE6 == 0xA2 and not pcb & PCB_CID_NAD:  # R-block
                    if pcb & 0x10:
                        problem = "an R(NAK) from the card"
                    elif receiving:
                        problem = "an R(ACK) while the card was chaining"
                    elif pcb & PCB_BLOCK_NUMBER == self.block_number:
                        if index == len(pieces) - 1:
                            problem = "an R(ACK) for a block that was not chained"
                        else:  # rule 7: our chained block arrived, send the next one
                            self.block_number ^= 1
                            errors = 0
                            index += 1
                            last = index == len(pieces) - 1
                            last_i_block = self._i_block(pieces[index], chaining=not last)
                            to_send = last_i_block
                            continue
                    else:  # rule 6: the card missed our last I-block
                        errors += 1
                        if errors > self.max_retries:
                            raise IsoDepError(f"I-block not acknowledged after {errors} tries")
                        to_send = last_i_block
                        continue
                elif pcb & 0xF7 == PCB_S_WTX and len(block) == 2:
                    wtxm = block[1] & 0x3F
                    if not 1 <= wtxm <= 59:
                        problem = f"S(WTX) with WTXM {wtxm}"
                    else:
                        wtx += 1
                        if wtx > self.max_wtx:
                            raise IsoDepError(f"more than {self.max_wtx} waiting time extensions")
                        assert self.ats is not None
                        extended = min(self.ats.fwt_s * wtxm, FWT_MAX_S) + DELTA_FWT_S
                        timeout = min(extended, self.max_wait_s)
                        to_send = bytes((PCB_S_WTX, wtxm))
                        continue
                else:
                    problem = f"an unexpected block (PCB 0x{pcb:02X})"
            # rules 4 and 5: an invalid block or a timeout
            errors += 1
            if errors > self.max_retries:
                raise IsoDepError(f"{problem}, {errors} times")
            to_send = self._r_block(ack=receiving)

    # -- frames --------------------------------------------------------------------

    def _i_block(self, inf: bytes, *, chaining: bool) -> bytes:
        pcb = PCB_I | self.block_number | (PCB_CHAINING if chaining else 0)
        return bytes((pcb,)) + inf

    def _r_block(self, *, ack: bool) -> bytes:
        return bytes(((PCB_R_ACK if ack else PCB_R_NAK) | self.block_number,))

    def _frame(self, block: bytes, timeout: float, expect_bytes: int = 0) -> Frame:
        guard, self._guard_s = self._guard_s, 0.0
        frame = _frame(block, timeout, guard, expect_bytes)
        if len(frame.data) > self.max_frame:
            raise AssertionError(f"a {len(frame.data)}-byte frame over the {self.max_frame} limit")
        return frame


def _frame(block: bytes, timeout: float, guard: float = 0.0, expect_bytes: int = 0) -> Frame:
    return Frame(block + crc_a(block), timeout_s=timeout, guard_s=guard, expect_bytes=expect_bytes)


def _checked(reply: Reply | None, fsd: int) -> bytes | str:
    """The block in ``reply`` without its CRC, or why it is not a valid block."""
    if reply is None:
        return "no answer"
    if reply.collision or reply.parity_error or reply.crc_error or reply.overflow:
        return "a garbled frame"
    data = reply.data
    if reply.last_bits or len(data) < FRAME_OVERHEAD:
        return f"a frame of {len(data)} bytes and {reply.last_bits} bits"
    if len(data) > fsd:
        return f"a {len(data)}-byte frame over our FSD of {fsd}"
    if crc_a(data[:-2]) != data[-2:]:
        return "a frame failing CRC_A"
    return bytes(data[:-2])


# -- ISO 7816-4 APDUs ------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    data: bytes
    sw: int

    @property
    def ok(self) -> bool:
        return self.sw == SW_OK


def parse_response(raw: bytes) -> Response:
    if len(raw) < 2:
        raise IsoDepError(f"a response APDU of {len(raw)} bytes has no status word")
    return Response(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))


def select_by_name(name: bytes) -> bytes:
    """SELECT by DF name (an application id), first or only occurrence, FCI asked (Le 00)."""
    if not 1 <= len(name) <= 16:
        raise ValueError("a DF name has 1 to 16 bytes")
    return bytes((0x00, 0xA4, 0x04, 0x00, len(name))) + name + b"\x00"


def select_file(file_id: bytes) -> bytes:
    """SELECT an elementary file by its 2-byte id in the current DF, no answer data."""
    if len(file_id) != 2:
        raise ValueError("a file id has 2 bytes")
    return bytes((0x00, 0xA4, 0x00, 0x0C, 0x02)) + file_id


def read_binary(offset: int, length: int) -> bytes:
    """READ BINARY of ``length`` (1..256) bytes at ``offset`` (0..32767) of the current EF."""
    if not 0 <= offset <= 0x7FFF or not 1 <= length <= 256:
        raise ValueError(f"READ BINARY at {offset} for {length} bytes")
    return bytes((0x00, 0xB0, offset >> 8, offset & 0xFF, length & 0xFF))


NDEF_FILE_MAX = 1024  # longer than any card we issue: a larger NLEN is not our card


def read_ndef_file(link: IsoDep) -> Flow[bytes | None]:
    """The NDEF file of an NFC Forum Type 4 tag: NLEN and the message; None if it has none.

    Select the NDEF application by name, the NDEF file E104, then READ BINARY
    from offset 0 in chunks that each come back in one frame: the first chunk
    carries NLEN and usually most of the message (a Qatysu card's file takes two
    chunks at FSD 64), so no exchange is spent on NLEN alone.
    """
    for command in (select_by_name(NDEF_AID), select_file(NDEF_FILE_ID)):
        if not parse_response((yield from link.exchange(command))).ok:
            return None
    file = bytearray()
    nlen: int | None = None
    while nlen is None or len(file) < 2 + nlen:
        want = (
            link.max_read_chunk if nlen is None else min(link.max_read_chunk, 2 + nlen - len(file))
        )
        command = read_binary(len(file), want)
        part = parse_response((yield from link.exchange(command, expect=want + 2)))
        # 6282: the file ended before ``want`` bytes, a short file read whole.
        if part.sw not in (SW_OK, SW_END_OF_FILE) or not part.data or len(part.data) > want:
            return None
        file += part.data
        if nlen is None:
            if len(file) < 2:
                return None
            nlen = int.from_bytes(file[:2], "big")
            if not 0 < nlen <= NDEF_FILE_MAX:
                return None
        if len(file) < 2 + nlen and part.sw == SW_END_OF_FILE:
            return None  # NLEN says more than the file holds
    return bytes(file[: 2 + nlen])
