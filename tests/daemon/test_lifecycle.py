"""The daemon as a real process: start, records about itself, signals, sockets."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.buffer.buffer import RecordBuffer
from agent.config import load_config
from agent.control import daemon_running
from agent.exceptions import BufferFullError, ControlError
from agent.protocol import verify_chain
from agent.protocol.keys import public_key_from_b64
from agent.readers.framing import em4100_frame
from agent.records.store import open_store
from tests.daemon.scenarios import Tapper, drain, next_uid
from tests.daemon.support import REPO, DaemonProcess, Device, LivePortal, make_device, wait_until
from tests.hardware.helpers import Pty


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""
    folder = tempfile.mkdtemp(prefix="qn")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    yield sock, path
    sock.close()


def notifications(sock: socket.socket, until: str, timeout: float = 20.0) -> list[str]:
    """Datagrams received until one holds the line ``until``."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = sock.recv(4096).decode().splitlines()
        seen.extend(lines)
        if until in lines:
            return seen
    raise AssertionError(f"no {until!r} among {seen}")


def test_refuses_to_start_before_enrollment(tmp_path: Path) -> None:
    device = make_device(tmp_path, None)
    result = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(device.config_path), "run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"qatysu: error: {device.config_path}: portal.device_id is empty")
    assert not (tmp_path / "state" / "buffer").exists()


def test_boot_heartbeat_and_config_records_with_an_rdm6300_on_a_pty(
    tmp_path: Path, portal: LivePortal
) -> None:
    pty = Pty()
    try:
        readers = f'[[readers]]\nname = "hall"\ndriver = "rdm6300"\nport = "{pty.name}"\n'
        device = make_device(tmp_path, portal, readers=readers, heartbeat_s=1)
        device.sim_socket = device.control  # no simulated reader: ready once the socket answers
        with DaemonProcess(device) as daemon:
            daemon.wait_ready()
            cursor = daemon.request("watch", after=0, wait_ms=0)["cursor"]

            def presented() -> dict[str, object] | None:
                # pyserial drops input that arrived before the port was open:
                # present the card again until the reader has it (a card held
                # in the field repeats its frame too).
                nonlocal cursor
                pty.write(em4100_frame("0A1B2C3D4E"))
                answer = daemon.request("watch", after=cursor, wait_ms=2000)
                cursor = answer["cursor"]
                return next((e for e in answer["events"] if e["kind"] == "badge"), None)

            badge = wait_until(presented, what="the badge from the pty")
            assert badge["uid"] == "0A1B2C3D4E" and badge["driver"] == "rdm6300"
            assert badge["stored"] is True
            wait_until(
                lambda: any(r["type"] == "heartbeat" for r in portal.records(device.device_id)),
                what="a heartbeat at the portal",
            )
            daemon.terminate()  # exits within terminate()'s generous timeout
            assert daemon.proc.returncode == 0, daemon.log()
        text = device.config_path.read_text().replace("interval_s = 1", "interval_s = 2")
        device.config_path.write_text(text)
        with DaemonProcess(device) as daemon:
            daemon.wait_ready()
            drain(daemon)
            daemon.terminate()
    finally:
        pty.close()
    records = portal.records(device.device_id)
    report = verify_chain(records, public_key_from_b64(device.public_key), device.device_id)
    assert report.failure is None
    boots = [r for r in records if r["type"] == "boot"]
    assert len(boots) == 2
    assert boots[0]["data"]["drivers"] == ["rdm6300"]
    assert boots[0]["data"]["readers"] == ["hall"] and boots[0]["data"]["doors"] == []
    assert boots[0]["data"]["agent_version"]
    assert boots[0]["data"]["config_sha256"] != boots[1]["data"]["config_sha256"]
    badge_record = next(r for r in records if r["type"] == "badge")
    assert badge_record["data"] == {
        "reader": "hall",
        "driver": "rdm6300",
        "uid": "0A1B2C3D4E",
        "uid_len": 5,
    }
    heartbeat = next(r for r in records if r["type"] == "heartbeat")
    assert heartbeat["data"]["readers"] == {"hall": "ok"}
    assert isinstance(heartbeat["data"]["pending"], int) and "uptime_s" in heartbeat["data"]
    configs = [r for r in records if r["type"] == "config"]
    assert len(configs) == 1, "one config record: only the second run saw a change"
    assert configs[0]["data"] == {
        "config_sha256": boots[1]["data"]["config_sha256"],
        "previous_sha256": boots[0]["data"]["config_sha256"],
    }
    assert configs[0]["seq"] == boots[1]["seq"] + 1


def test_sigterm_while_tapping_stops_and_cleans_up(
    device: Device, portal: LivePortal, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, path = notify_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "600000"}
    with DaemonProcess(device, env=env) as daemon:
        daemon.wait_ready()
        seen = notifications(sock, "READY=1")
        assert any(line.startswith("STATUS=") and "pending" in line for line in seen)
        notifications(sock, "WATCHDOG=1")
        assert stat.S_IMODE(device.control.stat().st_mode) == 0o660
        with Tapper(daemon, interval_s=0.005) as tapper:
            time.sleep(0.5)
            # Stopped within terminate()'s generous timeout; how fast (the 5 s
            # docs/daemon.md promises) is bench.daemon_figures' to measure.
            daemon.terminate()
        assert daemon.proc.returncode == 0, daemon.log()
        assert "STOPPING=1" in notifications(sock, "STOPPING=1")
    assert tapper.log.confirmed, "taps were confirmed before the stop"
    assert not device.control.exists() and not daemon_running(device.control)
    # The buffer lock is free: nothing else holds it.
    RecordBuffer(device.root / "state").open().close()
    with DaemonProcess(device) as daemon:
        daemon.wait_ready()
        drain(daemon)
        daemon.terminate()
    stored = {r["data"]["uid"] for r in portal.records(device.device_id) if r["type"] == "badge"}
    assert set(tapper.log.confirmed) <= stored


def test_a_second_daemon_is_refused_and_the_first_keeps_running(device: Device) -> None:
    with DaemonProcess(device) as first:
        first.wait_ready()
        with DaemonProcess(device) as second:
            assert second.wait(30) == 1
            assert "buffer" in second.log() or "control socket" in second.log()
        assert first.request("status")["running"] is True
        first.terminate()


def test_mock_pin_moves_a_door_in_the_daemon(tmp_path: Path, portal: LivePortal) -> None:
    doors = (
        '[[doors]]\nname = "front"\npin = 17\npull = "up"\nopen_when = "high"\ndebounce_ms = 20\n'
    )
    device = make_device(tmp_path, portal, doors=doors)
    with DaemonProcess(device) as daemon:
        daemon.wait_ready()
        first = daemon.request("status")["doors"]["front"]
        cursor = daemon.request("watch", after=0, wait_ms=0)["cursor"]
        target = first == "open"  # drive the level that flips the door: low closes a pull-up reed
        daemon.request("mock-pin", pin=17, level=not target)
        events = daemon.request("watch", after=cursor, wait_ms=5000)["events"]
        door = next(e for e in events if e["kind"] == "door")
        flipped = "closed" if first == "open" else "open"
        assert door["sensor"] == "front" and door["state"] == flipped and door["seq"]
        assert daemon.request("status")["doors"]["front"] == flipped
        drain(daemon)
        daemon.terminate()
    doors_at_portal = [r for r in portal.records(device.device_id) if r["type"] == "door"]
    assert [r["data"] for r in doors_at_portal] == [{"sensor": "front", "state": flipped}]


def test_mock_pin_does_not_exist_without_the_mock_factory(device: Device) -> None:
    with DaemonProcess(device, mock_pins=False) as daemon:
        daemon.wait_ready()
        with pytest.raises(ControlError, match="unknown command 'mock-pin'"):
            daemon.request("mock-pin", pin=17, level=True)
        daemon.terminate()


def test_feedback_and_watch_through_the_socket(device: Device) -> None:
    with DaemonProcess(device) as daemon:
        daemon.wait_ready()
        assert daemon.request("feedback", pattern="accepted") == {"ok": True}
        with pytest.raises(ControlError, match="unknown pattern 'disco'"):
            daemon.request("feedback", pattern="disco")
        cursor = daemon.request("watch", after=0, wait_ms=0)["cursor"]
        uid = next_uid()
        daemon.tap(uid)
        events = daemon.request("watch", after=cursor, wait_ms=5000)["events"]
        assert events[0]["kind"] == "badge" and events[0]["uid"] == uid
        assert events[0]["reader"] == "entrance" and events[0]["uid_len"] == 4
        daemon.terminate()


def test_reader_unplugged_and_back_gives_reader_records_and_heartbeat_health(
    tmp_path: Path, portal: LivePortal
) -> None:
    link = tmp_path / "ttyUSB0"
    first = Pty()
    os.symlink(first.name, link)
    readers = f'[[readers]]\nname = "hall"\ndriver = "rdm6300"\nport = "{link}"\n'
    device = make_device(tmp_path / "dev", portal, readers=readers, heartbeat_s=1)
    device.sim_socket = device.control
    second = Pty()
    try:
        with DaemonProcess(device) as daemon:
            daemon.wait_ready()
            cursor = daemon.request("watch", after=0, wait_ms=0)["cursor"]
            first.close()  # unplugged
            link.unlink()

            def reader_event(state: str) -> bool:
                nonlocal cursor
                answer = daemon.request("watch", after=cursor, wait_ms=1000)
                cursor = answer["cursor"]
                return any(e["kind"] == "reader" and e["state"] == state for e in answer["events"])

            wait_until(lambda: reader_event("fault"), what="a reader fault")
            assert daemon.request("status")["readers"] == {"hall": "fault"}
            wait_until(
                lambda: any(
                    r["type"] == "heartbeat" and r["data"]["readers"] == {"hall": "fault"}
                    for r in portal.records(device.device_id)
                ),
                what="a heartbeat naming the fault",
            )
            os.symlink(second.name, link)  # plugged back in
            wait_until(lambda: reader_event("recovered"), what="the reader's recovery")
            assert daemon.request("status")["readers"] == {"hall": "ok"}
            drain(daemon)
            daemon.terminate()
    finally:
        second.close()
        first.close()
    states = [r["data"] for r in portal.records(device.device_id) if r["type"] == "reader"]
    assert [s["state"] for s in states] == ["fault", "recovered"]
    assert states[0]["reader"] == "hall" and str(link) in states[0]["detail"]


def test_a_tap_reaches_a_reachable_portal(tmp_path: Path, portal: LivePortal) -> None:
    """Each tap gets its receipt with no further tap or timer to push it; how fast
    (tap to receipt) is measured by bench.daemon_figures, not asserted here."""
    device = make_device(tmp_path, portal, upload_delay_ms=200)  # the shipped default
    with DaemonProcess(device) as daemon:
        daemon.wait_ready()
        drain(daemon)
        for _ in range(3):
            cursor = daemon.request("watch", after=0, wait_ms=0)["cursor"]
            daemon.tap(next_uid())
            events = daemon.request("watch", after=cursor, wait_ms=30_000)["events"]
            seq = next(e["seq"] for e in events if e["kind"] == "badge")
            wait_until(
                lambda s=seq: daemon.request("status")["last_ack_seq"] >= s,
                timeout=30.0,
                what=f"a receipt for seq {seq}",
            )
        daemon.terminate()


def test_a_full_buffer_still_starts_and_uploading_frees_it(
    tmp_path: Path, portal: LivePortal
) -> None:
    device = make_device(tmp_path, portal, extra="[buffer]\nsegment_records = 64\nquota_mb = 1\n")
    writer = open_store(load_config(device.config_path))
    stored = 0
    try:
        for pad in (4000, 200, 0):  # a long outage filled the buffer to its last byte
            try:
                while True:
                    data = {"pending": stored, "readers": {}, "uptime_s": 0, "pad": "z" * pad}
                    writer.write("heartbeat", data)
                    stored += 1
            except BufferFullError:
                pass
    finally:
        writer.close()
    with DaemonProcess(device) as daemon:
        daemon.wait_ready()  # running, although its boot record could not be stored
        assert "boot record not stored" in daemon.log()
        drain(daemon)  # uploading frees the space
        uid = next_uid()
        cursor = daemon.request("watch", after=0, wait_ms=0)["cursor"]
        daemon.tap(uid)
        events = daemon.request("watch", after=cursor, wait_ms=5000)["events"]
        assert events[0]["uid"] == uid and events[0]["stored"] is True
        drain(daemon)
        daemon.terminate()
    records = portal.records(device.device_id)
    assert len([r for r in records if r["type"] == "heartbeat"]) >= stored
    alarms = [r["data"] for r in records if r["type"] == "alarm"]
    assert any(a["kind"] == "disk_full" and a["detail"].startswith("1 event(s)") for a in alarms)
