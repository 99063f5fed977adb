"""What a browser gets besides the page: security headers, and an Origin check on writes.

Two defences for pages that show children's data:

* every answer carries headers that keep it out of frames, caches and other
  sites' referrers, and a Content-Security-Policy that allows no script at all
  (the pages work without JavaScript) and no resource from another origin;
* a state-changing request that a browser could send with the page cookie
  (anything but GET, HEAD and OPTIONS without a bearer token) must come from the
  portal's own origin. SameSite=Lax alone lets a top-level POST through from a
  sibling subdomain and from older browsers; the Origin header settles it, since
  every current browser sends it on a POST (``null`` when the page hides where
  it is, which is refused unless a same-origin Referer says otherwise). A write
  with neither header is no browser's: devices, scripts and API clients, whose
  requests carry a signature or a token of their own, pass untouched.

The same-origin test compares the Origin's host and port with the request's
``Host`` header, not the scheme: behind the city's TLS proxy the browser says
``https`` while the portal itself is reached over plain HTTP on loopback.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SECURITY_HEADERS", "BrowserGuards"]

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # same-origin, not no-referrer: under no-referrer a browser sends "Origin: null"
    # on our own forms, and the Origin check below would refuse them.
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _cross_site(scope: Scope) -> str | None:
    """Why this write must be refused as cross-site, or None to let it through."""
    if scope["method"] in _SAFE_METHODS:
        return None
    authorization = _header(scope, b"authorization") or ""
    if authorization.lower().startswith("bearer "):
        return None  # an API client: a cookie cannot make a browser send this header
    host = (_header(scope, b"host") or "").lower()
    origin = _header(scope, b"origin")
    referer = _header(scope, b"referer")
    if origin is None and referer is None:
        return None  # no browser sends a write without Origin: a script or a device
    # "null" is what a page that hides its origin (sandbox, no-referrer) sends.
    claimed = referer if origin in (None, "null") else origin
    if claimed is None:
        return "a write from a page that hides its origin is refused"
    netloc = urlsplit(claimed).netloc.lower()
    if netloc and netloc == host:
        return None
    return f"cross-site request refused (origin {claimed[:100]!r})"


class BrowserGuards:
    """ASGI middleware: security headers on every answer, same-origin writes only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = _cross_site(scope)
        if refusal is not None:
            body = json.dumps({"error": "forbidden", "detail": refusal}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        *SECURITY_HEADERS,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {bytes(k).lower() for k, _ in message.get("headers", ())}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)
