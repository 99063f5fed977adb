"""Every request body is bounded before it is read (docs/portal.md, Device API)."""

from __future__ import annotations

import json
import select
import socket
import tracemalloc
from collections.abc import Iterator

import httpx
import pytest

from portal.api.models import HARDWARE_MAX_BYTES
from portal.api.request_encoding import ANONYMOUS_LIMIT
from portal.registry import create_enroll_token
from portal.state import Portal
from tests.portal.support import LiveServer, SimDevice

BIG = 64 * 1024 * 1024
PIECE = 64 * 1024


def _pieces(total: int, chunked: bool) -> Iterator[bytes]:
    piece = b'{"token": "' + b"a" * (PIECE - 11)
    for _ in range(total // PIECE):
        yield b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
    if chunked:
        yield b"0\r\n\r\n"


def _raw_post(
    port: int, path: str, *, chunked: bool, total: int = BIG, extra: str = ""
) -> tuple[int, dict[str, object], int]:
    """POST ``total`` bytes, stopping as soon as the portal answers: (status, body, bytes sent)."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{extra}{framing}\r\n\r\n"
    )
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        for piece in _pieces(total, chunked):
            if select.select([sock], [], [], 0)[0]:
                break  # answered already
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            sent += len(piece)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    status = int(answer.split(b" ", 2)[1])
    return status, json.loads(answer.split(b"\r\n\r\n", 1)[1]), sent


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_big_plain_enrollment_is_refused_without_holding_it(
    live: LiveServer, chunked: bool
) -> None:
    tracemalloc.start()
    try:
        status, body, sent = _raw_post(live.port, "/api/v1/enroll", chunked=chunked)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (status, body["error"]) == (413, "too_large"), body
    assert sent < BIG  # the answer came before the body was all sent
    assert peak < 16 * 1024 * 1024, f"the portal held {peak} bytes for a {BIG}-byte body"


def test_an_anonymous_body_on_any_route_has_the_small_limit(live: LiveServer) -> None:
    status, body, _ = _raw_post(
        live.port, "/api/v1/admin/centers", chunked=True, total=4 * ANONYMOUS_LIMIT
    )
    assert (status, body["error"]) == (413, "too_large")


def test_an_operator_body_has_the_general_limit(
    portal: Portal, live: LiveServer, operator_token: str
) -> None:
    auth = f"Authorization: Bearer {operator_token}\r\n"
    total = portal.settings.max_body_bytes + 2 * PIECE
    status, body, _ = _raw_post(
        live.port, "/api/v1/admin/centers", chunked=True, total=total, extra=auth
    )
    assert (status, body["error"]) == (413, "too_large")
    ok = httpx.post(
        f"{live.url}/api/v1/admin/centers",
        json={"center_id": "c9", "name": "N" * 100},
        headers={"Authorization": f"Bearer {operator_token}"},
    )
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize(
    "hardware",
    [
        {"notes": "x" * HARDWARE_MAX_BYTES},
        {f"k{i}": i for i in range(100)},
        {"a": {"b": {"c": {"d": {"e": 1}}}}},
    ],
    ids=["size", "keys", "depth"],
)
def test_enrollment_hardware_is_small(
    portal: Portal, client: httpx.Client, hardware: dict[str, object]
) -> None:
    token = create_enroll_token(portal.engine, "c1", 3_600_000, now=portal.clock())
    body = {"token": token, "public_key": SimDevice().public_key, "hardware": hardware}
    answer = client.post("/api/v1/enroll", json=body)
    assert (answer.status_code, answer.json()["error"]) == (400, "malformed"), answer.text
    body["hardware"] = {"model": "Raspberry Pi 5", "readers": [{"driver": "mfrc522"}]}
    assert client.post("/api/v1/enroll", json=body).status_code == 201
