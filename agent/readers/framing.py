"""Sans-I/O framing for serial badge readers: bytes in, card UIDs out.

Nothing here touches a port, a thread or a clock. The serial shells
(:mod:`agent.readers.rdm6300`, :mod:`agent.readers.serial_line`) feed whatever
``read()`` returned, in whatever pieces it arrived, and act on the results;
the tests feed the same objects directly, fuzzed (a sans-I/O core, like pyserial's
``Packetizer.data_received``).

- :class:`Em4100Framer`: RDM6300-style frames ``STX, 10 ASCII hex, 2 ASCII hex
  XOR checksum, ETX``; resynchronises on garbage, split and merged frames.
- :class:`LineFramer`: one UID per text line, found with a configurable pattern.

One read per presentation is :mod:`agent.readers.presence`, shared with the MFRC522.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.protocol.errors import UidError
from agent.protocol.uids import normalise_uid as _normalise_uid

__all__ = [
    "Card",
    "Em4100Framer",
    "LineFramer",
    "Rejected",
    "normalise_uid",
]

STX = 0x02
ETX = 0x03
EM4100_FRAME_LEN = 14  # STX + 10 hex + 2 hex checksum + ETX
_HEX = frozenset(b"0123456789ABCDEFabcdef")
_LINE_END = re.compile(rb"[\r\n]")


@dataclass(frozen=True)
class Card:
    """A well-formed frame: ``uid`` is uppercase hex of the real UID bytes."""

    uid: str

    @property
    def uid_len(self) -> int:
        return len(self.uid) // 2


@dataclass(frozen=True)
class Rejected:
    """Bytes that looked like a frame but were not one (logged, never raised)."""

    reason: str
    raw: bytes


Result = Card | Rejected


def normalise_uid(text: str) -> str | None:
    """Uppercase hex without separators, or None when it is not whole bytes of hex."""
    try:
        return _normalise_uid(text, lengths=None)  # a reader's UID may have any length
    except UidError:
        return None


class Em4100Framer:
    """Frames of an RDM6300 (EM4100 at 125 kHz).

    The checksum is the XOR of the five data bytes the ten hex digits spell;
    the UID is those five bytes, never the checksum. A candidate frame that
    fails (a non-hex digit, a wrong checksum, no ETX where it belongs) costs
    only its STX: the search restarts one byte later, so a real frame that
    began inside the garbage is still found.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Result]:
        self._buf += data
        results: list[Result] = []
        while True:
            start = self._buf.find(STX)
            if start < 0:
                self._buf.clear()  # nothing here can start a frame
                return results
            if start:
                del self._buf[:start]
            # Check the digits already present so garbage is dropped early
            # and the buffer never grows past one frame.
            body = self._buf[1:13]
            bad = next((i for i, b in enumerate(body) if b not in _HEX), None)
            if bad is not None:
                results.append(Rejected("non-hex digit", bytes(self._buf[: bad + 2])))
                del self._buf[:1]
                continue
            if len(self._buf) < EM4100_FRAME_LEN:
                return results  # wait for the rest
            frame = bytes(self._buf[:EM4100_FRAME_LEN])
            if frame[13] != ETX:
                results.append(Rejected("no ETX", frame))
                del self._buf[:1]
                continue
            data_bytes = bytes.fromhex(frame[1:11].decode("ascii"))
            checksum = int(frame[11:13], 16)
            xor = 0
            for b in data_bytes:
                xor ^= b
            if xor != checksum:
                results.append(Rejected("bad checksum", frame))
                del self._buf[:1]
                continue
            results.append(Card(data_bytes.hex().upper()))
            del self._buf[:EM4100_FRAME_LEN]


def em4100_frame(uid: str) -> bytes:
    """The frame an RDM6300 sends for ``uid`` (10 hex digits); for tests and the demo."""
    data = bytes.fromhex(uid)
    if len(data) != 5:
        raise ValueError(f"EM4100 UID must be 5 bytes, not {uid!r}")
    xor = 0
    for b in data:
        xor ^= b
    return bytes([STX]) + data.hex().upper().encode() + f"{xor:02X}".encode() + bytes([ETX])


class LineFramer:
    """One UID per line (``\\n``, ``\\r\\n`` or ``\\r``), matched with ``pattern``.

    The pattern's first group (or the whole match when it has no group) is
    the UID; separators ``:``, ``-`` and spaces are dropped and it must be
    whole bytes of hex. A line longer than ``max_line`` is noise: dropped up
    to the next line end.
    """

    def __init__(self, pattern: str, *, max_line: int = 256) -> None:
        self.pattern = re.compile(pattern)
        self.max_line = max_line
        self._buf = bytearray()
        self._overlong = False

    def feed(self, data: bytes) -> list[Result]:
        self._buf += data
        results: list[Result] = []
        while True:
            found = _LINE_END.search(self._buf)
            if found is None:
                if len(self._buf) > self.max_line:
                    results.append(Rejected("line too long", bytes(self._buf[:32])))
                    self._buf.clear()
                    self._overlong = True
                return results
            end = found.start()
            line = bytes(self._buf[:end])
            del self._buf[: end + 1]
            if self._overlong:  # the tail of a line already rejected
                self._overlong = False
                continue
            if line.strip():
                results.append(self._parse(line))

    def _parse(self, line: bytes) -> Result:
        text = line.decode("ascii", errors="replace").strip()
        match = self.pattern.search(text)
        if match is None:
            return Rejected("no UID in line", line)
        uid = normalise_uid(match.group(1) if match.groups() else match.group(0))
        if uid is None:
            return Rejected("UID is not hex bytes", line)
        return Card(uid)
