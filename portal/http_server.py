"""uvicorn as the portal runs it: bounded connections, headers and idle time.

uvicorn times out a connection only *between* requests (keep-alive). A socket
that connects and never completes its request head stays open for ever, and
once ``limit_concurrency`` connections are held that way every new request,
``/health`` included, gets 503. :class:`GuardedH11Protocol` gives each
connection a deadline for its request head, from the moment it opens and again
after each response, so idle and slow-header sockets are closed and the limit
protects the portal instead of being a lever against it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from portal.settings import Settings

__all__ = ["GuardedH11Protocol", "server_config"]

# Largest request head (request line + headers) we parse; real clients send < 2 KB.
MAX_HEAD_BYTES = 16 * 1024


class GuardedH11Protocol(H11Protocol):
    """h11 with a deadline for each request head (``head_timeout_s`` on the class)."""

    head_timeout_s: float = 10.0
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        if not self.transport.is_closing():
            self._head_deadline = self.loop.call_later(self.head_timeout_s, self._head_overdue)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_overdue(self) -> None:
        # A request whose head arrived is the application's (and the body
        # limit's) business; only a connection still waiting for a head is cut.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()


def server_config(
    app: Any, *, host: str, port: int, settings: Settings, **extra: Any
) -> uvicorn.Config:
    """The uvicorn configuration ``qatysu-portal serve`` runs (and its tests use).

    With ``workers`` > 1 in ``extra``, ``app`` is an import string and each worker
    process imports the protocol by name (a class made here would not cross to it);
    the worker's app factory sets its head deadline from the same settings.
    """
    protocol: Any = type(
        "PortalH11Protocol", (GuardedH11Protocol,), {"head_timeout_s": settings.head_timeout_s}
    )
    if extra.get("workers", 1) > 1:
        protocol = "portal.http_server:GuardedH11Protocol"
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        proxy_headers=False,
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        timeout_graceful_shutdown=10,
        **extra,
    )
