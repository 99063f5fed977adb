"""Request bodies read within the size limit, gzip inflated (docs/portal.md, Device API).

:func:`read_body` is the one reader: the device upload endpoints (``records``
and ``gaps``) call it themselves, to keep evidence of refused uploads; the
middleware calls it for every other request, compressed or not, and hands the
endpoint the plain body. Nothing reaches an endpoint unbounded: a declared
``Content-Length`` over the limit is refused before a byte is read, and a
chunked body is counted as it streams. Requests without credentials (enrollment,
the login form) get :data:`ANONYMOUS_LIMIT`, so an anonymous client cannot make
the portal hold megabytes.

The same middleware refuses, before any route, a path holding a control
character (404: no id has one) or a query value holding one (400): PostgreSQL
refuses NUL in text, and ids reach it from paths and queries on every route.
String fields of bodies are refused by :data:`portal.api.models.Text`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.api.models import CONTROL_CHARACTERS
from portal.exceptions import ClientGone, MalformedRequest, RequestTooLarge
from portal.ingest.body import inflate

__all__ = ["ANONYMOUS_LIMIT", "InflateRequestBodies", "read_body"]

_OWN_READERS = re.compile(r"^/api/v1/devices/[^/]+/(records|gaps)$")
# An enrollment is a token, a key and a small hardware description: far under this.
ANONYMOUS_LIMIT = 64 * 1024
_CREDENTIALS = (b"authorization", b"cookie")
_ANONYMOUS_ROUTES = frozenset({"/api/v1/enroll", "/login"})  # whatever headers they carry


async def read_body(request: Request, limit: int) -> bytes:
    """The decoded body; 413 past ``limit`` bytes, compressed or inflated, before reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"body of {declared} bytes is over {limit}")
    chunks = bytearray()
    try:
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > limit:
                raise RequestTooLarge(f"body is over {limit} bytes")
    except ClientDisconnect:
        raise ClientGone(f"the client hung up after {len(chunks)} bytes of the body") from None
    encoding = request.headers.get("content-encoding")
    return await run_in_threadpool(inflate, bytes(chunks), encoding, limit)


class InflateRequestBodies:
    """ASGI middleware: every request body is read bounded, and a compressed one inflated."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = _control_characters(scope)
        if refused is not None:
            await _answer(*refused, scope, receive, send)
            return
        if _OWN_READERS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        anonymous = scope["path"] in _ANONYMOUS_ROUTES or not any(
            k in _CREDENTIALS for k, _ in scope["headers"]
        )
        try:
            plain = await read_body(request, ANONYMOUS_LIMIT if anonymous else self.limit)
        except RequestTooLarge as exc:
            await _answer(413, "too_large", str(exc), scope, receive, send)
            return
        except (MalformedRequest, ClientGone) as exc:
            await _answer(400, "malformed", str(exc), scope, receive, send)
            return
        headers = [
            (k, v) for k, v in scope["headers"] if k not in (b"content-encoding", b"content-length")
        ]
        headers.append((b"content-length", str(len(plain)).encode()))
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": plain, "more_body": False}
            return await receive()  # a disconnect, later

        await self.app(dict(scope, headers=headers), replay, send)


def _control_characters(scope: Scope) -> tuple[int, str, str] | None:
    """404 for a control character in the (decoded) path, 400 for one in a query value."""
    if CONTROL_CHARACTERS.search(scope["path"]):
        return 404, "not_found", "no id holds a control character"
    query = scope.get("query_string", b"").decode("latin-1")
    if query and any(
        CONTROL_CHARACTERS.search(k) or CONTROL_CHARACTERS.search(v)
        for k, v in parse_qsl(query, keep_blank_values=True)
    ):
        return 400, "malformed", "a query parameter holds a control character"
    return None


async def _answer(
    status: int, error: str, detail: str, scope: Scope, receive: Receive, send: Send
) -> None:
    response = JSONResponse({"error": error, "detail": detail}, status_code=status)
    await response(scope, receive, send)
