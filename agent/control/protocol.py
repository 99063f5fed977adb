"""Framing and message shapes of the control socket, with no socket in sight.

A request is one JSON object on one line with a string ``cmd``; an answer is
one JSON object on one line; an error answer is ``{"error": "one line"}``.
Lines are bounded so that a confused client cannot make the daemon buffer
without limit.
"""

from __future__ import annotations

import json
from typing import Any

from agent.exceptions import ControlError

__all__ = [
    "MAX_LINE",
    "LineDecoder",
    "decode_answer",
    "decode_request",
    "encode",
    "error_answer",
]

# A receipt or an export path is far below this; a watch answer is capped by
# the server's event limit.
MAX_LINE = 1 << 20


def encode(message: dict[str, Any]) -> bytes:
    """One message as one line (JSON never contains a raw newline)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def error_answer(message: str) -> dict[str, Any]:
    """An error answer; the text is kept to its first line."""
    first = str(message).strip().splitlines()
    return {"error": first[0] if first else "error"}


class LineDecoder:
    """Splits a byte stream into lines; ``feed`` returns the complete ones."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._pending = bytearray()
        self._max = max_line

    def feed(self, data: bytes) -> list[bytes]:
        self._pending += data
        lines: list[bytes] = []
        while True:
            end = self._pending.find(b"\n")
            if end < 0:
                break
            lines.append(bytes(self._pending[:end]))
            del self._pending[: end + 1]
        if len(self._pending) > self._max:
            self._pending.clear()
            raise ControlError(f"control message longer than {self._max} bytes")
        return lines

    @property
    def pending(self) -> bytes:
        """Bytes received after the last newline."""
        return bytes(self._pending)


def _parse_object(line: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ControlError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ControlError(f"{what} is not a JSON object")
    return value


def decode_request(line: bytes) -> tuple[str, dict[str, Any]]:
    """``(cmd, other fields)`` of a request line; ControlError if malformed."""
    request = _parse_object(line, "request")
    cmd = request.pop("cmd", None)
    if not isinstance(cmd, str) or not cmd:
        raise ControlError("request has no 'cmd' string")
    return cmd, request


def decode_answer(line: bytes) -> dict[str, Any]:
    """The answer object; an error answer raises ControlError with its text.

    An error answer holds ``error`` and nothing else: ``upload`` answers carry
    an ``error`` field of their own (the round's outcome) beside its counts."""
    answer = _parse_object(line, "answer")
    if set(answer) == {"error"}:
        raise ControlError(str(answer["error"]))
    return answer
