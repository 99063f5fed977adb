"""Request bodies as they arrive: size limits, gzip without bombs, lenient JSON framing.

The batch envelope is parsed with :func:`agent.protocol.parse_json_lenient`,
so that a bad value inside one record (a float, a duplicate key, NaN, an
integer beyond 2^53) fails that record with ``encoding`` at its seq instead of
refusing the whole request.
"""

from __future__ import annotations

import zlib
from typing import Any

from agent.protocol import DuplicateKeys, EncodingError, parse_json_lenient
from portal.exceptions import MalformedRequest, RequestTooLarge

__all__ = ["inflate", "parse_envelope", "parse_lenient"]


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


def parse_envelope(body: bytes, field: str) -> Any:
    """The value of ``field`` in a JSON object body; 400 for anything unreadable."""
    value = parse_lenient(body)
    if not isinstance(value, dict) or field not in value:
        raise MalformedRequest(f"body must be a JSON object with {field!r}")
    if isinstance(value, DuplicateKeys):
        raise MalformedRequest(f"body repeats the key {value.duplicate!r}")
    return value[field]


def parse_lenient(body: bytes) -> Any:
    """JSON with values outside the record value set kept in place as markers."""
    try:
        return parse_json_lenient(body)
    except EncodingError as exc:  # not UTF-8, not JSON
        raise MalformedRequest(f"body is {exc}") from exc
