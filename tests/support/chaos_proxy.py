"""A fault-injecting HTTP/1.1 proxy for loopback tests: the network a device really has.

``ChaosProxy`` listens on 127.0.0.1 and forwards each request to ``upstream``
(host, port), choosing a fault per request (or refusing whole connections):

=================  ==================================================================
``pass``           forward untouched
``refuse``         while set, no listener: connecting fails (ECONNREFUSED)
``reset_request``  forward only half the request, then reset both sides
``reset_response`` forward the request, relay half the answer, then reset
``delay``          forward, then hold the answer ``delay_s`` (past the client timeout)
``500`` ``503``    answer that status itself (503 and 429 with ``Retry-After``)
``429``
``truncate``       relay the answer with its body cut short, then close
``fake``           answer like a portal with another key: 200 and a receipt signed by
                   ``fake_key`` (what a club's fake portal would do)
=================  ==================================================================

The fault for each request comes from ``schedule(n)`` (n counts requests
from 0) or, when no schedule is set, from :attr:`mode`. Threads only; every
socket is closed by :meth:`stop`. Reused by the daemon tests and the demo.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol import build_receipt

__all__ = ["FAULTS", "ChaosProxy", "fake_portal_answer"]

FAULTS = (
    "pass",
    "reset_request",
    "reset_response",
    "delay",
    "500",
    "503",
    "429",
    "truncate",
    "fake",
)
_HEAD_LIMIT = 64 * 1024


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER with a zero timeout)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _read_message(sock: socket.socket, buffered: bytearray) -> tuple[bytes, bytes] | None:
    """One HTTP/1.1 message (head, body) with a Content-Length body; None at EOF."""
    while b"\r\n\r\n" not in buffered:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffered += chunk
        if len(buffered) > _HEAD_LIMIT and b"\r\n\r\n" not in buffered:
            raise ConnectionError("header too long")
    end = buffered.index(b"\r\n\r\n") + 4
    head = bytes(buffered[:end])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"transfer-encoding":
            raise ConnectionError("chunked bodies are not supported by the chaos proxy")
    del buffered[:end]
    while len(buffered) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("body cut short")
        buffered += chunk
    body = bytes(buffered[:length])
    del buffered[:length]
    return head, body


def _response(status: int, body: dict[str, Any], extra: str = "") -> bytes:
    data = json.dumps(body).encode()
    reason = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error"}.get(
        status, "Service Unavailable"
    )
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\n{extra}\r\n"
    )
    return head.encode() + data


def fake_portal_answer(head: bytes, body: bytes, key: Ed25519PrivateKey) -> bytes:
    """What a fake portal answers: 200 and a receipt, signed by ``key``, for the
    last record of the batch (or the declared gap), as if it had stored it all."""
    if b"content-encoding: gzip" in head.lower():
        with contextlib.suppress(OSError, EOFError):
            body = gzip.decompress(body)
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = {}
    records = parsed.get("records") or ([parsed["record"]] if "record" in parsed else [])
    last = records[-1] if records and isinstance(records[-1], dict) else {}
    device = str(last.get("device") or "unknown")
    seq, record_hash = last.get("seq"), last.get("hash")
    seq = seq if isinstance(seq, int) else 0
    record_hash = record_hash if isinstance(record_hash, str) else "0" * 64
    receipt = build_receipt(
        key, device=device, seq=seq, record_hash=record_hash, server_ms=int(time.time() * 1000)
    )
    return _response(200, {"receipt": receipt, "accepted": len(records), "duplicates": 0})


class ChaosProxy:
    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        schedule: Callable[[int], str] | None = None,
        delay_s: float = 1.0,
        retry_after_s: int = 1,
        fake_key: Ed25519PrivateKey | None = None,
    ) -> None:
        self.upstream = upstream
        self.schedule = schedule
        self.mode = "pass"
        self.delay_s = delay_s
        self.retry_after_s = retry_after_s
        self.fake_key = fake_key or Ed25519PrivateKey.generate()
        self.counts: Counter[str] = Counter()
        self._requests = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self.port = 0
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- control ------------------------------------------------------------------

    def start(self) -> ChaosProxy:
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._close_listener()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _reset(sock)

    def refuse(self, on: bool) -> None:
        """Stop listening (connections are refused) or listen again on the same port."""
        if on:
            self._close_listener()
            with self._lock:
                sockets = list(self._sockets)
            for sock in sockets:
                _reset(sock)  # kept-alive connections go too
        elif self._listener is None:
            self._listen()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted ones inherit
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._accepting.start()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
            if self._accepting is not None:
                self._accepting.join(5)

    def _next_fault(self) -> str:
        with self._lock:
            n = self._requests
            self._requests += 1
        fault = self.schedule(n) if self.schedule is not None else self.mode
        if fault == "refuse":  # a schedule cannot refuse a connection already made
            fault = "reset_request"
        with self._lock:
            self.counts[fault] += 1
        return fault

    # --- serving ------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        buffered, answer_buffer = bytearray(), bytearray()
        try:
            while not self._stopped.is_set():
                message = _read_message(client, buffered)
                if message is None:
                    return
                head, body = message
                fault = self._next_fault()
                if fault in ("500", "503", "429"):
                    status = int(fault)
                    extra = f"retry-after: {self.retry_after_s}\r\n" if status != 500 else ""
                    client.sendall(_response(status, {"error": "chaos", "detail": fault}, extra))
                    continue
                if fault == "fake":
                    client.sendall(fake_portal_answer(head, body, self.fake_key))
                    continue
                if upstream is None:
                    upstream = socket.create_connection(self.upstream, timeout=30)
                    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    with self._lock:
                        self._sockets.add(upstream)
                if fault == "reset_request":
                    whole = head + body
                    upstream.sendall(whole[: max(1, len(whole) // 2)])
                    _reset(upstream)
                    _reset(client)
                    return
                upstream.sendall(head + body)
                reply = _read_message(upstream, answer_buffer)
                if reply is None:
                    _reset(client)
                    return
                answer = reply[0] + reply[1]
                if fault == "reset_response":
                    client.sendall(answer[: len(answer) // 2])
                    _reset(client)
                    _reset(upstream)
                    return
                if fault == "truncate":
                    client.sendall(reply[0] + reply[1][: len(reply[1]) // 2])
                    client.shutdown(socket.SHUT_WR)
                    _reset(upstream)
                    return
                if fault == "delay" and self._stopped.wait(self.delay_s):
                    return
                client.sendall(answer)
        except (OSError, ConnectionError, ValueError):
            pass  # the client or upstream went away: so does this connection
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with self._lock:
                        self._sockets.discard(sock)
                    with contextlib.suppress(OSError):
                        sock.close()
