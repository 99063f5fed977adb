"""Request bodies as they arrive: size limits, gzip without bombs, lenient JSON framing.

The batch envelope is parsed leniently so that a bad value inside one record
(a float, a duplicate key, a huge integer) fails that record with ``encoding``
at its seq instead of refusing the whole request: such values become
:class:`Invalid` markers, which the record checks reject.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from portal.exceptions import MalformedRequest, RequestTooLarge

__all__ = ["Invalid", "inflate", "parse_envelope", "parse_lenient"]


class Invalid:
    """A JSON value outside the record value set, kept in place of the value."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why

    def __repr__(self) -> str:
        return f"<invalid: {self.why}>"


def inflate(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body decoded per ``Content-Encoding``; at most ``limit`` bytes are ever inflated."""
    coding = (encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding not in ("gzip", "x-gzip"):
        raise MalformedRequest(f"Content-Encoding {coding!r} is not supported (use gzip)")
    inflater = zlib.decompressobj(wbits=31)
    out = bytearray()
    pending = body
    try:
        while pending and not inflater.eof:
            out += inflater.decompress(pending, limit + 1 - len(out))
            if len(out) > limit:
                raise RequestTooLarge(f"body inflates to more than {limit} bytes")
            pending = inflater.unconsumed_tail
    except zlib.error as exc:
        raise MalformedRequest(f"body is not valid gzip: {exc}") from exc
    if not inflater.eof:
        raise MalformedRequest("gzip body is truncated")
    if inflater.unused_data:
        raise MalformedRequest("trailing bytes after the gzip member")
    return bytes(out)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            result[key] = Invalid(f"duplicate key {key!r}")
        else:
            result[key] = value
    return result


def _int(text: str) -> int | Invalid:
    if len(text.lstrip("-")) > 16:
        return Invalid(f"integer {text[:20]} is outside |n| < 2^53")
    return int(text)


def parse_envelope(body: bytes, field: str) -> Any:
    """The value of ``field`` in a JSON object body; 400 for anything unreadable."""
    value = parse_lenient(body)
    if not isinstance(value, dict) or field not in value:
        raise MalformedRequest(f"body must be a JSON object with {field!r}")
    return value[field]


def parse_lenient(body: bytes) -> Any:
    """JSON with values outside the record value set kept as :class:`Invalid` markers."""
    try:
        value = json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_pairs,
            parse_float=lambda t: Invalid(f"number {t} has a fraction or exponent"),
            parse_int=_int,
            parse_constant=lambda t: Invalid(f"{t} is not a JSON number"),
        )
    except UnicodeDecodeError as exc:
        raise MalformedRequest("body is not UTF-8") from exc
    except (ValueError, RecursionError) as exc:
        raise MalformedRequest(f"body is not JSON: {exc}") from exc
    return value
