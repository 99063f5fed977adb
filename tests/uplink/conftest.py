"""Uplink fixtures: a real portal under uvicorn, a device enrolled through its HTTP API,
and the device's real buffer and chain behind a RecordStore."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.buffer.buffer import RecordBuffer
from agent.clock import Clock, ManualClock
from agent.config import BufferConfig
from agent.protocol import public_key_b64
from agent.records.store import RecordStore
from agent.uplink.client import PortalClient
from agent.uplink.policy import UploadPolicy
from agent.uplink.uploader import Uploader
from portal.app import create_app
from portal.registry import add_center, create_admin_token, create_enroll_token
from portal.settings import Settings
from portal.state import Portal, open_portal
from tests.portal.support import LiveServer


class RecordingStore(RecordStore):
    """A RecordStore that also remembers every record it wrote (the test's witness)."""

    def __init__(
        self, buffer: RecordBuffer, key: Ed25519PrivateKey, device_id: str, clock: Clock
    ) -> None:
        super().__init__(buffer, key, device_id, clock)
        self.written: dict[int, dict[str, Any]] = {}
        self.add_listener(lambda record: self.written.__setitem__(record["seq"], record))

    def write(self, type: str, data: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            if self.buffer.lost_ranges:
                self.declare_losses()  # here, so that the listener sees the gap records
            return super().write(type, data)

    def alarms(self) -> list[dict[str, Any]]:
        return [r for r in self.written.values() if r["type"] == "alarm"]


@dataclass
class Rig:
    portal: Portal
    server: LiveServer
    operator_token: str
    state_dir: Path
    device_id: str = ""
    portal_key: str = ""
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    clock: ManualClock = field(default_factory=ManualClock)
    buffer: RecordBuffer | None = None
    store: RecordingStore | None = None
    servers: list[LiveServer] = field(default_factory=list)

    @property
    def public_key(self) -> str:
        return public_key_b64(self.key)

    def open_store(self, config: BufferConfig | None = None) -> RecordingStore:
        self.buffer = RecordBuffer(self.state_dir, config, clock=self.clock).open()
        self.store = RecordingStore(self.buffer, self.key, self.device_id, self.clock)
        return self.store

    def uploader(
        self,
        url: str | None = None,
        *,
        timeout_s: float = 5.0,
        clock: Clock | None = None,
        **policy: Any,
    ) -> Uploader:
        assert self.store is not None
        client = PortalClient(url or self.server.url, insecure=True, timeout_s=timeout_s)
        settings: dict[str, Any] = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}
        settings.update(policy)
        return Uploader(
            self.store,
            client,
            UploadPolicy(**settings),
            self.portal_key,
            self.device_id,
            clock or self.clock,
            device_key_b64=self.public_key,
        )

    def write(self, n: int, start: int = 0) -> None:
        assert self.store is not None
        for index in range(start, start + n):
            self.store.write(
                "badge",
                {"reader": "door1", "driver": "simulated", "uid": f"{index:08X}", "uid_len": 4},
            )
            self.clock.advance(0.01)

    def stored(self) -> list[dict[str, Any]]:
        """Every record the portal holds for the device, through the admin API."""
        out: list[dict[str, Any]] = []
        with httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {self.operator_token}"}
        ) as http:
            while True:
                after = out[-1]["seq"] if out else 0
                answer = http.get(
                    f"/api/v1/admin/devices/{self.device_id}/records",
                    params={"after_seq": after, "limit": 5000},
                )
                answer.raise_for_status()
                page = answer.json()["records"]
                if not page:
                    return out
                out += page

    def restart_server(self) -> LiveServer:
        """Stop uvicorn and start a new one over the same store (a portal restart)."""
        self.server.stop()
        self.server = LiveServer(create_app(self.portal.settings, portal=self.portal))
        self.server.start()
        self.servers.append(self.server)
        return self.server


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    settings = Settings(data_dir=tmp_path / "portal", rate_burst=100_000, rate_per_s=100_000.0)
    portal = open_portal(settings)
    add_center(portal.engine, "c1", "Center one", now=portal.clock())
    token = create_admin_token(portal.engine, "op", "operator", now=portal.clock())
    server = LiveServer(create_app(settings, portal=portal))
    server.start()
    rig = Rig(portal, server, token, tmp_path / "device")
    rig.servers.append(server)
    enroll_token = create_enroll_token(portal.engine, "c1", 3_600_000, now=portal.clock())
    with PortalClient(server.url, insecure=True) as client:
        answer = client.enroll(enroll_token, rig.public_key, "test", {"model": "test"})
    rig.device_id = answer["device_id"]
    rig.portal_key = answer["portal_public_key"]
    rig.open_store()
    try:
        yield rig
    finally:
        if rig.buffer is not None:
            rig.buffer.close()
        rig.server.stop()
        portal.close()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` seconds."""
    done = threading.Event()
    for _ in range(int(timeout * 20)):
        if predicate():
            return
        done.wait(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
