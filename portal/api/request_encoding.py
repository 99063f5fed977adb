"""Gzip request bodies for every endpoint (SPEC section 3), inflated within the limit.

The device upload endpoints (``records`` and ``gaps``) read and inflate their
bodies themselves, to keep evidence of refused uploads; this middleware leaves
them alone and does the same for the rest (enrollment, operator API, imports):
it buffers at most ``limit`` bytes, inflates at most ``limit`` bytes off the
event loop, and hands the endpoint a plain body.
"""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.exceptions import MalformedRequest, RequestTooLarge
from portal.wire import inflate

__all__ = ["InflateRequestBodies"]

_OWN_READERS = re.compile(r"^/api/v1/devices/[^/]+/(records|gaps)$")


class InflateRequestBodies:
    """ASGI middleware: a ``Content-Encoding`` request body becomes a plain one."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _OWN_READERS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-encoding"]
        if len(headers) == len(scope["headers"]):
            await self.app(scope, receive, send)
            return
        encoding = dict(scope["headers"])[b"content-encoding"].decode("latin-1")
        try:
            body = await self._read(receive)
            plain = await run_in_threadpool(inflate, body, encoding, self.limit)
        except RequestTooLarge as exc:
            await _answer(413, "too_large", str(exc), scope, receive, send)
            return
        except MalformedRequest as exc:
            await _answer(400, "malformed", str(exc), scope, receive, send)
            return
        headers = [(k, v) for k, v in headers if k != b"content-length"]
        headers.append((b"content-length", str(len(plain)).encode()))
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": plain, "more_body": False}
            return await receive()  # a disconnect, later

        await self.app(dict(scope, headers=headers), replay, send)

    async def _read(self, receive: Receive) -> bytes:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise MalformedRequest("the client hung up before its body arrived")
            body += message.get("body", b"")
            if len(body) > self.limit:
                raise RequestTooLarge(f"body is over {self.limit} bytes")
            if not message.get("more_body", False):
                return bytes(body)


async def _answer(
    status: int, error: str, detail: str, scope: Scope, receive: Receive, send: Send
) -> None:
    response = JSONResponse({"error": error, "detail": detail}, status_code=status)
    await response(scope, receive, send)
