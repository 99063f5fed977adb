"""The buffer's bookkeeping file, written atomically.

``state.json`` holds what the segments cannot say by themselves: the last
acknowledged ``(seq, hash)``, the anchor, the highest seq reserved, and the
lost ranges not yet declared. It is one checksummed line (the segment line
format), replaced with temp file, fsync, ``os.replace``, fsync of the folder.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.buffer.lines import decode_line, encode_line
from agent.durable import replace_file
from agent.exceptions import BufferFullError, RecordBufferError

__all__ = ["LostRange", "State", "read_state", "write_state"]


@dataclass(frozen=True)
class LostRange:
    """Records ``first_seq..last_seq`` the device lost; ``last_hash`` "" when unknown."""

    first_seq: int
    last_seq: int
    last_hash: str
    reason: str

    def as_json(self) -> list[Any]:
        return [self.first_seq, self.last_seq, self.last_hash, self.reason]


@dataclass(frozen=True)
class State:
    last_ack_seq: int = 0
    last_ack_hash: str = ""
    anchor: str = ""
    reserved: int = 0  # the highest seq the device may have used
    lost: tuple[LostRange, ...] = field(default_factory=tuple)  # not yet declared

    def with_(self, **changes: Any) -> State:
        return replace(self, **changes)


def read_state(path: Path) -> tuple[State | None, str]:
    """The state, or None and why (missing, or the problem with its content)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, "missing"
    obj = decode_line(data[:-1]) if data.endswith(b"\n") else None
    if obj is None or obj.get("t") != "state":
        return None, "bad checksum or shape"
    try:
        lost = tuple(LostRange(int(a), int(b), str(c), str(d)) for a, b, c, d in obj["lost"])
        state = State(
            int(obj["last_ack_seq"]),
            str(obj["last_ack_hash"]),
            str(obj["anchor"]),
            int(obj["reserved"]),
            lost,
        )
    except (KeyError, TypeError, ValueError):
        return None, "bad fields"
    return state, ""


def write_state(path: Path, state: State) -> int:
    """Replace ``path`` atomically (returns its size); on disk full the old file stays."""
    line = encode_line(
        {
            "t": "state",
            "last_ack_seq": state.last_ack_seq,
            "last_ack_hash": state.last_ack_hash,
            "anchor": state.anchor,
            "reserved": state.reserved,
            "lost": [r.as_json() for r in state.lost],
        }
    )
    try:
        replace_file(path, line, mode=0o600, tmp=path.with_name(path.name + ".tmp"))
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BufferFullError(exc.errno, f"{path}: disk full ({exc.strerror})") from exc
        raise RecordBufferError(f"{path}: cannot write: {exc}") from exc
    return len(line)
