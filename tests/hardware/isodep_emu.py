"""An ISO 14443-4 (ISO-DEP) type A card for the register-level MFRC522 emulator.

:class:`IsoDepCard` is an :class:`~tests.hardware.mfrc522_emu.EmulatedCard`
(SAK 0x20) that, once selected, answers RATS with an ATS (FSCI, FWI, SFGI
configurable) and then speaks the block protocol from the card's side
(ISO/IEC 14443-4 section 7.5, rules C, D and 10-13): its block number starts
at 1 and toggles on every I-block and on an R(ACK) carrying the other number;
an R(NAK) or R(ACK) carrying its own number gets its last block again; an
R(NAK) with the other number gets an R(ACK). It reassembles the reader's
chained I-blocks, chains its own answer in frames of at most the FSD the
reader announced, answers S(DESELECT) (and goes to HALT), and ignores
anything invalid (bad CRC, unknown PCB, CID/NAD, a frame over its FSC), as a
card must. Each complete command APDU goes to ``app.apdu(command) -> bytes``
(response data + SW1 SW2); ``app.reset()``, if the application has one, is
called at RATS and whenever the card leaves the session (DESELECT, field
lost), so an application can forget its selected file and authentication.

Time: ``apdu_time_s`` is how long the application takes to answer; when that
is more than the card's FWT the card sends S(WTX) (WTXM just enough) and
answers after the reader's S(WTX) response, as a real card must.

Faults, for the driver's recovery: ``faults`` maps the number of an ISO-DEP
frame the card receives (0 = RATS) to one of

* ``"lose"``: the frame never reaches the card (it stays silent, unchanged);
* ``"drop"``: the card acts on the frame but its answer never reaches the reader;
* ``"corrupt"``: the card's answer arrives with a wrong CRC_A;
* ``"leave"``: the card leaves the field: silent from this frame on
  (``present`` False; a test sets it back to bring the card back);
* ``"oversize"``: the card ignores the FSD and answers with 70 bytes, one
  frame longer than the chip's FIFO.

:class:`StaticType4App` is a small NFC Forum Type 4 tag application (NDEF
application, CC file E103, NDEF file E104 with fixed contents) and
:func:`sun_ndef_file` gives it an NDEF file carrying a SUN message computed
with :mod:`agent.protocol.ntag424`, so it looks like a Qatysu card to a reader
(its counter does not move: it is a recording, not an NTAG 424 DNA).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from agent.protocol.ntag424 import NDEF_AID, NDEF_FILE_ID, PICC_TAG, ndef_url_file, sdm_mac
from agent.readers.iso14443 import crc_a
from tests.hardware.mfrc522_emu import EmulatedCard, from_bits, to_bits

__all__ = ["Application", "IsoDepCard", "StaticType4App", "sun_ndef_file"]

FC = 13.56e6
FS_TABLE = (16, 24, 32, 40, 48, 64, 96, 128, 256)
FAULTS = ("lose", "drop", "corrupt", "leave", "oversize")


class Application(Protocol):
    """What an IsoDepCard hosts: one complete command APDU in, response APDU out."""

    def apdu(self, command: bytes) -> bytes: ...


class IsoDepCard(EmulatedCard):
    def __init__(
        self,
        uid: bytes | str,
        *,
        app: Application,
        fsci: int = 7,
        fwi: int = 7,
        sfgi: int = 1,
        apdu_time_s: float = 0.0,
        faults: Mapping[int, str] | None = None,
        answers_rats: bool = True,
    ) -> None:
        super().__init__(uid, sak=0x20)
        self.app = app
        self.fsci, self.fwi, self.sfgi = fsci, fwi, sfgi
        self.apdu_time_s = apdu_time_s
        self.faults = dict(faults or {})
        unknown = set(self.faults.values()) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS}")
        self.answers_rats = answers_rats
        self.present = True
        self.frames = 0  # ISO-DEP frames received (RATS included), for faults
        self.received: list[bytes] = []  # every ISO-DEP block received, CRC removed
        self.apdus: list[bytes] = []  # complete command APDUs handed to the app
        self.wtx_sent = 0
        self._reset_session()

    @property
    def ats(self) -> bytes:
        t0 = 0x70 | (self.fsci & 0x0F)  # TA, TB, TC present
        # TA 0x77 as an NTAG 424 DNA sends it (we stay at 106 kbit/s); TC: CID supported
        body = bytes((t0, 0x77, (self.fwi << 4) | self.sfgi, 0x02, 0x80))
        return bytes((len(body) + 1,)) + body

    @property
    def fsc(self) -> int:
        return FS_TABLE[min(self.fsci, 8)]

    @property
    def fwt_s(self) -> float:
        return 256 * 16 * (1 << self.fwi) / FC

    def power_cycle(self) -> None:
        # A field reset ends the session; it does not bring back a card that left.
        super().power_cycle()
        self._end_session()

    def _reset_session(self) -> None:
        self.block_number = 1  # rule C
        self.fsd = 256
        self._command = bytearray()
        self._pending: list[bytes] = []  # our answer's blocks still to send
        self._last: bytes | None = None
        self._after_wtx: bytes | None = None
        self._wtxm = 0

    def _end_session(self) -> None:
        if self.state == "PROTOCOL":
            self.state = "IDLE"
        self._reset_session()
        reset = getattr(self.app, "reset", None)
        if callable(reset):
            reset()

    # -- the card's side of the air interface ------------------------------------

    def receive(self, bits: list[int]) -> list[int] | None:
        self.answer_delay_s = 0.0
        if not self.present:
            return None
        if self.state == "PROTOCOL":
            return self._iso_dep(bits)
        data = from_bits(bits)
        is_rats = len(bits) == 32 and data[0] == 0xE0 and crc_a(data[:2]) == data[2:4]
        if self.state == "ACTIVE" and is_rats and self.answers_rats:
            return self._iso_dep(bits)
        return super().receive(bits)

    def _iso_dep(self, bits: list[int]) -> list[int] | None:
        fault = self.faults.get(self.frames)
        self.frames += 1
        if fault == "lose":
            return None
        if fault == "leave":
            self.present = False
            return None
        answer = self._block(bits)
        if answer is None:
            return None
        if fault == "drop":
            return None
        frame = bytearray(answer + crc_a(answer))
        if fault == "corrupt":
            frame[-1] ^= 0xFF
        elif fault == "oversize":
            frame = bytearray(answer[:1] + bytes(67)) + crc_a(answer[:1] + bytes(67))
        return to_bits(bytes(frame))

    def _block(self, bits: list[int]) -> bytes | None:
        if len(bits) % 8 or len(bits) < 24:
            return None
        data = from_bits(bits)
        if crc_a(data[:-2]) != data[-2:]:
            return None
        block = data[:-2]
        self.received.append(block)
        if self.state == "ACTIVE":  # RATS
            self.fsd = FS_TABLE[min(block[1] >> 4, 8)]
            self.state = "PROTOCOL"
            self._reset_session()
            self.fsd = FS_TABLE[min(block[1] >> 4, 8)]
            reset = getattr(self.app, "reset", None)
            if callable(reset):
                reset()
            return self.ats
        if len(data) > self.fsc:
            return None
        pcb = block[0]
        if pcb & 0x0C:  # CID or NAD: we were not addressed without one
            return None
        if pcb & 0xE2 == 0x02:  # I-block
            self.block_number ^= 1  # rule D
            self._command += block[1:]
            if pcb & 0x10:
                return self._send(bytes((0xA2 | self.block_number,)))
            command, self._command = bytes(self._command), bytearray()
            self.apdus.append(command)
            self._queue(self.app.apdu(command))
            if self.apdu_time_s > self.fwt_s:
                wtxm = min(59, int(self.apdu_time_s / self.fwt_s) + 1)
                self._wtxm = wtxm
                self._after_wtx = self._pending.pop(0)
                self.wtx_sent += 1
                return self._send(bytes((0xF2, wtxm)))
            self.answer_delay_s = self.apdu_time_s
            return self._send(self._pending.pop(0))
        if pcb & 0xE6 == 0xA2:  # R-block
            own = pcb & 0x01 == self.block_number
            if pcb & 0x10:  # NAK
                return self._send(self._last) if own and self._last else self._ack()
            if own:
                return self._send(self._last) if self._last else None
            if self._pending:  # the reader acknowledged our chained block
                self.block_number ^= 1  # rule E
                return self._send(self._pending.pop(0))
            return None
        if pcb == 0xC2 and len(block) == 1:  # S(DESELECT)
            self._end_session()
            self.state = "HALT"
            return bytes((0xC2,))
        if pcb == 0xF2 and len(block) == 2 and self._after_wtx is not None:
            if block[1] & 0x3F != self._wtxm:
                return None
            answer, self._after_wtx = self._after_wtx, None
            self.answer_delay_s = self.apdu_time_s
            return self._send(answer)
        return None

    def _ack(self) -> bytes:
        return self._send(bytes((0xA2 | self.block_number,)))

    def _queue(self, response: bytes) -> None:
        room = self.fsd - 3  # PCB + CRC_A
        pieces = [response[i : i + room] for i in range(0, len(response), room)] or [b""]
        self._pending = []
        for i, piece in enumerate(pieces):
            chaining = 0x10 if i < len(pieces) - 1 else 0
            # the block number is set when each block goes out (it toggles between them)
            self._pending.append(bytes((0x02 | chaining,)) + piece)

    def _send(self, block: bytes) -> bytes:
        if block[0] & 0xE2 == 0x02:  # I-blocks carry the card's current block number
            block = bytes(((block[0] & 0xFE) | self.block_number,)) + block[1:]
        self._last = block
        return block

    def __repr__(self) -> str:
        return f"<IsoDepCard {self.uid_hex} {self.state}>"


# -- a static Type 4 tag ------------------------------------------------------------

SW_OK = b"\x90\x00"
SW_NOT_FOUND = b"\x6a\x82"
SW_WRONG_P1P2 = b"\x6b\x00"
SW_INS_UNKNOWN = b"\x6d\x00"
SW_CLA_UNKNOWN = b"\x6e\x00"
SW_NO_EF = b"\x69\x86"
SW_END_OF_FILE = b"\x62\x82"
CC_FILE_ID = bytes.fromhex("E103")


@dataclass
class StaticType4App:
    """NDEF application with a CC file and an NDEF file of fixed contents.

    ``with_ndef_app=False`` makes a card with no NDEF application (SELECT by
    name answers 6A82), as a transport or payment card would.
    """

    ndef_file: bytes
    with_ndef_app: bool = True
    selected_app: bool = False
    selected_file: bytes | None = None
    commands: list[bytes] = field(default_factory=list)

    def reset(self) -> None:
        self.selected_app, self.selected_file = False, None

    @property
    def cc_file(self) -> bytes:
        size = max(len(self.ndef_file), 2)
        return (
            bytes.fromhex("000F20003B0034")  # CCLEN, mapping 2.0, MLe 59, MLc 52
            + bytes((0x04, 0x06))
            + NDEF_FILE_ID
            + size.to_bytes(2, "big")
            + b"\x00\xff"  # read free, no write
        )

    def apdu(self, command: bytes) -> bytes:
        self.commands.append(command)
        if len(command) < 4:
            return SW_WRONG_P1P2
        cla, ins, p1, p2 = command[:4]
        if cla != 0x00:
            return SW_CLA_UNKNOWN
        if ins == 0xA4 and p1 == 0x04:
            name = command[5 : 5 + command[4]] if len(command) > 5 else b""
            if self.with_ndef_app and name == NDEF_AID:
                self.selected_app, self.selected_file = True, None
                return SW_OK
            return SW_NOT_FOUND
        if ins == 0xA4 and p1 == 0x00:
            fid = command[5:7]
            if self.selected_app and fid in (CC_FILE_ID, NDEF_FILE_ID):
                self.selected_file = fid
                return SW_OK
            return SW_NOT_FOUND
        if ins == 0xB0:
            if self.selected_file is None:
                return SW_NO_EF
            content = self.cc_file if self.selected_file == CC_FILE_ID else self.ndef_file
            offset = (p1 << 8) | p2
            length = (command[4] or 256) if len(command) > 4 else 256
            if offset > len(content):
                return SW_WRONG_P1P2
            data = content[offset : offset + length]
            return data + (SW_OK if len(data) == length else SW_END_OF_FILE)
        return SW_INS_UNKNOWN


def sun_ndef_file(
    uid: bytes,
    counter: int,
    *,
    meta_key: bytes = bytes(16),
    file_key: bytes = bytes(16),
    base_url: str = "https://qatysu.kz/c",
) -> tuple[bytes, bytes, bytes]:
    """An NDEF file as an NTAG 424 DNA with SUN would serve it at read ``counter``.

    Returns the file, the PICCData ciphertext and the MAC mirrored in it.
    """
    plain = bytes((PICC_TAG,)) + uid + counter.to_bytes(3, "little") + secrets.token_bytes(5)
    encryptor = Cipher(algorithms.AES(meta_key), modes.CBC(bytes(16))).encryptor()
    picc = encryptor.update(plain) + encryptor.finalize()
    mac = sdm_mac(file_key, uid, counter)
    template, picc_at, mac_at = ndef_url_file(base_url)
    file = bytearray(template)
    file[picc_at : picc_at + 32] = picc.hex().upper().encode()
    file[mac_at : mac_at + 16] = mac.hex().upper().encode()
    return bytes(file), picc, mac
