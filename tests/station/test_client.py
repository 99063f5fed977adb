"""The station's portal client at its edges: answers it refuses, a process kept to itself."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.exceptions import ConfigError, PortalRefused, PortalUnreachable
from agent.protocol.card_keys import parse_station_authorization, verify_station_request
from agent.station.client import ANSWER_LIMIT, StationClient


def _client(handler: httpx.MockTransport, now: int = 1_000) -> StationClient:
    return StationClient(
        "https://portal.example",
        Ed25519PrivateKey.generate(),
        now_ms=lambda: now,
        transport=handler,
    )


def test_an_answer_over_the_limit_is_not_read_whole() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(201, content=b"{" + b" " * 100_000))
    with _client(transport) as client, pytest.raises(PortalRefused, match=f"over {ANSWER_LIMIT}"):
        client.card_keys("04A1B2C3D4E580", "AAAA", False)


def test_refusals_name_the_status_and_the_portal_detail() -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(409, json={"error": "conflict", "detail": "card X is active"})
    )
    with _client(transport) as client, pytest.raises(PortalRefused) as caught:
        client.activate("04A1B2C3D4E580", "00", "00")
    assert caught.value.status == 409
    assert str(caught.value).endswith("/api/v1/cards/activate: 409: card X is active")
    junk = httpx.MockTransport(lambda r: httpx.Response(201, content=b"[1]"))
    with _client(junk) as client, pytest.raises(PortalRefused, match="no JSON answer"):
        client.card_keys("04A1B2C3D4E580", "AAAA", False)


def test_requests_are_signed_in_strictly_increasing_time_even_when_the_clock_stands() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={})

    with _client(httpx.MockTransport(answer), now=5_000) as client:
        client.card_keys("04A1B2C3D4E580", "AAAA", False)
        client.card_keys("04A1B2C3D4E580", "AAAA", True)
        client.enroll("qcg_x", "KEY")
    first, second, enroll = seen
    times = []
    for request in (first, second):
        auth = parse_station_authorization(request.headers["authorization"])
        verify_station_request(auth, "POST", request.url.path, request.content, now_ms=5_000)
        times.append(auth.at_ms)
    assert times == [5_000, 5_001]
    assert "authorization" not in enroll.headers  # the grant is the credential, once


def test_plain_http_needs_insecure_and_a_dead_portal_is_unreachable() -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(ConfigError, match="plain http is refused"):
        StationClient("http://portal.example", key)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with _client(httpx.MockTransport(down)) as client, pytest.raises(PortalUnreachable):
        client.activate("04A1B2C3D4E580", "00", "00")


def test_the_station_process_dumps_no_core_and_cannot_be_traced() -> None:
    probe = (
        "import ctypes, ctypes.util, resource\n"
        "from agent.station.hygiene import harden_process\n"
        "done = harden_process()\n"
        "libc = ctypes.CDLL(ctypes.util.find_library('c'))\n"
        "print(done, resource.getrlimit(resource.RLIMIT_CORE), libc.prctl(3, 0, 0, 0, 0))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['no core dumps', 'not dumpable'] (0, 0) 0"
