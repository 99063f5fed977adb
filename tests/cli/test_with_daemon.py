"""The CLI against the real daemon (`qatysu run` as a child process, mock pins, live portal)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Run
from tests.daemon.support import DaemonProcess, Device, LivePortal, make_device

DOORS = '[[doors]]\nname = "front"\npin = 17\npull = "up"\nopen_when = "high"\ndebounce_ms = 20\n'
FEEDBACK = "[feedback]\ngreen_pin = 5\nred_pin = 6\nbuzzer_pin = 13\n"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Device, DaemonProcess]]:
    tmp = tmp_path_factory.mktemp("with-daemon")
    portal = LivePortal(tmp / "portal")
    device = make_device(tmp / "device", portal, doors=DOORS, feedback=FEEDBACK)
    with DaemonProcess(device) as daemon:
        daemon.wait_ready()
        yield device, daemon
        daemon.terminate()
    portal.close()


def later(action: Any, delay_s: float = 0.5) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay_s), action()), daemon=True)
    thread.start()
    return thread


def test_status_comes_from_the_daemon(running: tuple[Device, DaemonProcess], run: Run) -> None:
    device, daemon = running
    data = run("--config", device.config_path, "status", "--json").json()
    assert data["running"] is True and data["pid"] == daemon.proc.pid
    assert data["device_id"] == device.device_id
    assert data["readers"] == {"entrance": "ok"}


def test_reader_taps_through_the_daemon(running: tuple[Device, DaemonProcess], run: Run) -> None:
    device, daemon = running
    thread = later(lambda: daemon.tap("04A1B2C3"))
    result = run("--config", device.config_path, "test", "reader", "--timeout", "4", "--json")
    thread.join()
    assert result.code == 0, result.err
    assert result.lines()[0] == {
        "reader": "entrance",
        "driver": "simulated",
        "uid": "04A1B2C3",
        "uid_len": 4,
    }


def test_door_changes_through_the_daemon(running: tuple[Device, DaemonProcess], run: Run) -> None:
    device, daemon = running
    first = daemon.request("status")["doors"]["front"]
    flipped = "closed" if first == "open" else "open"
    # low closes a pull-up reed switch; high opens it
    thread = later(lambda: daemon.request("mock-pin", pin=17, level=flipped == "open"))
    result = run("--config", device.config_path, "test", "door", "--timeout", "4")
    thread.join()
    assert result.code == 0, result.err
    assert result.out.splitlines()[:2] == [f"door front: {first} (now)", f"door front: {flipped}"]


def test_feedback_through_the_daemon(running: tuple[Device, DaemonProcess], run: Run) -> None:
    device, _ = running
    result = run("--config", device.config_path, "test", "feedback", "--pattern", "accepted")
    assert result.code == 0, result.err
    assert result.out == "played accepted (via the running agent)\n"


def test_doctor_sees_the_running_daemon(
    running: tuple[Device, DaemonProcess], run: Run, tmp_path: Path
) -> None:
    device, _ = running
    result = run(
        "--config", device.config_path, "doctor", "--root", tmp_path, "--offline", "--json"
    )
    checks = {c["check"]: c for c in result.json()}
    assert checks["daemon"]["status"] == "pass"
    assert checks["reader"]["status"] == "pass"
