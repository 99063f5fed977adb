"""The segment file format, sans I/O: checksummed JSON lines and what a file's bytes hold.

Every line is ``CRC32-hex SPACE JSON LF``; the CRC covers the JSON bytes. A
segment starts with a header line, then one line per record, then (once
the next segment exists) a seal line::

    1c0a9f3e {"t":"h","v":1,"first":257,"reserved":512}
    5d01e7aa {"t":"r","id":257,"doc":{...record...}}
    ...
    0b77c2d4 {"t":"s","last":300,"hash":"ab...","next":301,"reserved":556}

A line is valid only if it ends with LF, its CRC matches and its JSON has the
expected shape, so a torn append is always recognised.
"""

from __future__ import annotations

import json
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "NO_WALL",
    "SegmentScan",
    "decode_line",
    "encode_line",
    "header_line",
    "parse_segment",
    "record_line",
    "seal_line",
]

FORMAT_VERSION = 1
NO_WALL = -(1 << 62)  # a record without an integer wall_ms, in SegmentScan.walls


def encode_line(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The object of one line without its LF, or None when it fails its checksum."""
    if len(line) < 11 or line[8:9] != b" ":
        return None
    body = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
        obj = json.loads(body)
    except ValueError:  # bad hex, bad UTF-8 or bad JSON
        return None
    return obj if isinstance(obj, dict) else None


def header_line(first: int, reserved: int) -> bytes:
    return encode_line({"t": "h", "v": FORMAT_VERSION, "first": first, "reserved": reserved})


def record_line(seq: int, record: dict[str, Any]) -> bytes:
    return encode_line({"t": "r", "id": seq, "doc": record})


def seal_line(last: int, last_hash: str, next_first: int, reserved: int) -> bytes:
    return encode_line(
        {"t": "s", "last": last, "hash": last_hash, "next": next_first, "reserved": reserved}
    )


def _int(value: object) -> bool:
    return type(value) is int


@dataclass
class SegmentScan:
    """What one segment file holds, as far as its bytes can be trusted."""

    first: int  # from the file name
    header: dict[str, Any] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)  # valid, ascending seq
    seal: dict[str, Any] | None = None
    good_end: int = 0  # byte offset just after the last valid line
    size: int = 0
    # invalid bytes followed by a valid line, a missing or wrong header, or a
    # record out of order: the file must be quarantined and rewritten
    damaged: bool = False
    problem: str = ""
    # Set when ``records`` was thinned to what recovery needs (a large backlog
    # must not cost a dict per record at open): every seq and wall_ms, in order.
    seqs: array[int] | None = None
    walls: array[int] | None = None

    def all_seqs(self) -> array[int]:
        """Every record's seq, ascending (``records`` may hold only some of them)."""
        if self.seqs is not None:
            return self.seqs
        return array("q", (r["seq"] for r in self.records))

    def seq_walls(self) -> Iterator[tuple[int, int | None]]:
        """(seq, wall_ms) of every record, ascending."""
        if self.seqs is not None and self.walls is not None:
            for seq, wall in zip(self.seqs, self.walls, strict=True):
                yield seq, (None if wall == NO_WALL else wall)
            return
        for record in self.records:
            value = record.get("wall_ms")
            yield record["seq"], value if _int(value) else None

    @property
    def torn_tail(self) -> bool:
        """Invalid bytes after the last valid line (a crash mid-append, or garbage)."""
        return self.size > self.good_end

    @property
    def reserved(self) -> int | None:
        if self.header is None:
            return None
        value = self.header.get("reserved")
        return value if _int(value) else None

    @property
    def last_seq(self) -> int | None:
        return self.records[-1]["seq"] if self.records else None


def parse_segment(data: bytes, first: int) -> SegmentScan:
    """Read a segment's bytes; never raises, reports damage in the result."""
    scan = SegmentScan(first=first, size=len(data))
    offset = 0
    bad_since: int | None = None  # offset of the first invalid line not yet followed by a valid one
    last_seq = first - 1
    while offset < len(data):
        end = data.find(b"\n", offset)
        if end < 0:
            break  # no LF: a torn final line
        obj = decode_line(data[offset:end])
        problem = _place(scan, obj, offset, last_seq) if obj is not None else "bad checksum"
        if problem:
            if bad_since is None:
                bad_since = offset
                scan.problem = scan.problem or f"byte {offset}: {problem}"
        else:
            assert obj is not None
            if bad_since is not None:
                scan.damaged = True  # something valid after something invalid
                bad_since = None
            if obj["t"] == "r":
                last_seq = obj["id"]
            scan.good_end = end + 1
        offset = end + 1
    if scan.header is None:
        scan.damaged = True
        scan.problem = scan.problem or "no valid header line"
    return scan


def _place(scan: SegmentScan, obj: dict[str, Any], offset: int, last_seq: int) -> str:
    """File a valid line into ``scan``; return why it does not belong, or ""."""
    kind = obj.get("t")
    if kind == "h":
        if offset != 0 or scan.header is not None:
            return "header line not at the start"
        if obj.get("first") != scan.first or not _int(obj.get("reserved")):
            return "header does not match the file name"
        scan.header = obj
        return ""
    if scan.header is None:
        return "line before the header"
    if scan.seal is not None:
        return "line after the seal"
    if kind == "r":
        doc, seq = obj.get("doc"), obj.get("id")
        if not (isinstance(seq, int) and isinstance(doc, dict) and doc.get("seq") == seq):
            return "record line without a matching seq"
        if seq <= last_seq:
            return f"record {seq} out of order"
        reserved = scan.reserved
        if reserved is not None and seq > reserved:
            return f"record {seq} beyond the reservation {reserved}"
        scan.records.append(doc)
        return ""
    if kind == "s":
        if not (_int(obj.get("next")) and _int(obj.get("reserved")) and _int(obj.get("last"))):
            return "malformed seal line"
        scan.seal = obj
        return ""
    return f"unknown line type {kind!r}"
