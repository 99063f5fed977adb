"""The world around a daemon under test: a live portal, a device folder, the process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agent.control import ControlClient, daemon_running
from agent.identity import generate_key_file
from agent.protocol import public_key_b64
from agent.readers.simulated import tap
from portal.app import create_app
from portal.registry import add_center, create_admin_token, create_enroll_token
from portal.settings import Settings
from portal.state import Portal, open_portal
from tests.portal.support import LiveServer

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 20.0


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT_S, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something true; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.02)


class LivePortal:
    """The real portal on SQLite under uvicorn, with an operator token."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = Settings(data_dir=data_dir, rate_burst=100_000, rate_per_s=100_000.0)
        self.portal: Portal = open_portal(self.settings)
        add_center(self.portal.engine, "c1", "Center one", now=self.portal.clock())
        self.admin = create_admin_token(
            self.portal.engine, "op", "operator", now=self.portal.clock()
        )
        self.server = LiveServer(create_app(self.settings, portal=self.portal))
        self.server.start()
        self.url = self.server.url
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def enroll(self, key_b64: str) -> dict[str, Any]:
        token = create_enroll_token(self.portal.engine, "c1", 3_600_000, now=self.portal.clock())
        answer = self.http.post(
            "/api/v1/enroll",
            json={"token": token, "public_key": key_b64, "agent_version": "test", "hardware": {}},
        )
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def records(self, device_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            after = out[-1]["seq"] if out else 0
            answer = self.http.get(
                f"/api/v1/admin/devices/{device_id}/records",
                params={"after_seq": after, "limit": 5000},
                headers={"Authorization": f"Bearer {self.admin}"},
            )
            assert answer.status_code == 200, answer.text
            batch = answer.json()["records"]
            if not batch:
                return out
            out.extend(batch)

    def restart(self) -> int:
        """Stop uvicorn and start a new one over the same store; the new port."""
        self.server.stop()
        self.server = LiveServer(create_app(self.settings, portal=self.portal))
        self.server.start()
        self.url = self.server.url
        self.http.close()
        self.http = httpx.Client(base_url=self.url, timeout=30)
        port: int = self.server.port
        return port

    def close(self) -> None:
        self.http.close()
        self.server.stop()
        self.portal.close()


@dataclass
class Device:
    """A device folder: config, key, state dir, short socket paths."""

    root: Path
    config_path: Path
    device_id: str
    public_key: str
    control: Path
    sim_socket: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def client(self, timeout_s: float = 5.0) -> ControlClient:
        return ControlClient(self.control, timeout_s)


def make_device(
    tmp_path: Path,
    portal: LivePortal | None,
    *,
    portal_url: str | None = None,
    readers: str = "",
    doors: str = "",
    heartbeat_s: int = 300,
    feedback: str = "",
    portal_extra: str = "",
    upload_delay_ms: int = 50,
    extra: str = "",
) -> Device:
    """Key, enrollment (through HTTP) and an agent.toml; sockets in a short temp dir."""
    state = tmp_path / "state"
    key = generate_key_file(state / "device.key")
    key_b64 = public_key_b64(key)
    if portal is not None:
        enrolled = portal.enroll(key_b64)
        device_id, portal_key = enrolled["device_id"], enrolled["portal_public_key"]
        url = portal_url or portal.url
    else:
        device_id, portal_key, url = "", "", portal_url or ""
    run = Path(tempfile.mkdtemp(prefix="qd"))
    control, sim = run / "c.sock", run / "sim.sock"
    if not readers:
        readers = f'[[readers]]\nname = "entrance"\ndriver = "simulated"\nsocket = "{sim}"\n'
    text = f"""
[device]
state_dir = "{state}"
control_socket = "{control}"

[portal]
url = "{url}"
device_id = "{device_id}"
center_id = "c1"
public_key = "{portal_key}"
upload_delay_ms = {upload_delay_ms}
upload_interval_s = 2.0
timeout_s = 3.0
backoff_initial_s = 0.2
backoff_max_s = 1.0
{portal_extra}

[heartbeat]
interval_s = {heartbeat_s}

{feedback}
{readers}
{doors}
{extra}
"""
    config = tmp_path / "agent.toml"
    config.write_text(text)
    return Device(tmp_path, config, device_id, key_b64, control, sim)


class DaemonProcess:
    """``python -m agent --config X run`` as a real child process."""

    def __init__(
        self, device: Device, *, mock_pins: bool = True, env: dict[str, str] | None = None
    ):
        self.device = device
        self.log_path = device.root / f"daemon-{time.time_ns()}.log"
        environ = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
        if mock_pins:
            environ["GPIOZERO_PIN_FACTORY"] = "mock"
        environ.update(env or {})
        # A killed daemon leaves its simulated reader's socket behind; the
        # next one replaces it, but wait_ready() must not mistake it for live.
        if device.sim_socket.exists():
            device.sim_socket.unlink()
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "--config", str(device.config_path), "run"],
            cwd=REPO,
            env=environ,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = WAIT_S) -> DaemonProcess:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.log()}")
            return daemon_running(self.device.control) and self.device.sim_socket.exists()

        wait_until(ready, timeout, "the daemon's sockets")
        return self

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        return self.device.client(10.0).request(cmd, **fields)

    def tap(self, *uids: str) -> None:
        tap(self.device.sim_socket, *uids)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.wait(10)

    def terminate(self, timeout: float = 30.0) -> float:
        """SIGTERM; seconds until the process had exited (raises after ``timeout``:
        a generous bound, not the daemon's 5 s promise, which the bench measures)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.wait(timeout)
        return time.monotonic() - started

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.wait(10)


def watch_all(
    daemon: DaemonProcess, cursor: int, wait_ms: int = 500
) -> tuple[int, list[dict[str, Any]]]:
    answer = daemon.request("watch", after=cursor, wait_ms=wait_ms)
    return answer["cursor"], answer["events"]


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())
