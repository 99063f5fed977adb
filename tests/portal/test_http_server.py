"""The portal as `serve` runs it: idle or slow-header sockets cannot hold its connections."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from portal.app import create_app
from portal.http_server import server_config
from portal.settings import Settings
from portal.state import Portal, open_portal

UNITS = Path(__file__).resolve().parents[2] / "systemd"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    settings = Settings(data_dir=tmp_path / "data", max_connections=40, head_timeout_s=1.0)
    portal: Portal = open_portal(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = server_config(
        create_app(settings, portal=portal),
        host="127.0.0.1",
        port=port,
        settings=settings,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield url, settings
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        portal.close()


def _health_within(url: str, seconds: float) -> int | None:
    """The status /health answers with once it answers other than 503, within ``seconds``."""
    deadline = time.monotonic() + seconds
    status = None
    while time.monotonic() < deadline:
        try:
            status = httpx.get(f"{url}/api/v1/health", timeout=5).status_code
        except httpx.TransportError:
            status = None
        if status == 200:
            return status
        time.sleep(0.2)
    return status


@pytest.mark.parametrize("opening", [b"", b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n"])
def test_idle_and_slow_header_sockets_are_closed_and_health_answers(
    served: tuple[str, Settings], opening: bytes
) -> None:
    url, settings = served
    port = int(url.rsplit(":", 1)[1])
    held = []
    for _ in range(settings.max_connections + 20):
        s = socket.create_connection(("127.0.0.1", port))
        if opening:
            s.sendall(opening)  # a request head that never ends
        held.append(s)
    try:
        # The limit is full of sockets that send nothing more: they are cut after
        # head_timeout_s, and the portal answers again (generous time, no deadline test).
        assert _health_within(url, 30) == 200
        closed = 0
        for s in held:
            s.settimeout(5)
            try:
                closed += s.recv(1) == b""
            except OSError:
                closed += 1
        assert closed == len(held)
    finally:
        for s in held:
            s.close()


def test_a_request_in_flight_is_not_cut_by_the_head_deadline(
    served: tuple[str, Settings],
) -> None:
    url, settings = served
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/api/v1/health").status_code == 200
        time.sleep(settings.head_timeout_s / 2)
        assert client.get("/api/v1/health").status_code == 200  # keep-alive still usable


def test_the_portal_unit_raises_the_descriptor_limit_above_the_connection_limit() -> None:
    text = (UNITS / "qatysu-portal.service").read_text()
    values = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    assert int(values["LimitNOFILE"]) > Settings().max_connections * 2
