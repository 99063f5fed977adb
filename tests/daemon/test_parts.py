"""The daemon's parts in process: watch, timers, sd_notify, health."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import load_config
from agent.daemon import Daemon
from agent.daemon.health import Interval, ReaderHealth, UploadState, status_line
from agent.daemon.systemd import Notifier
from agent.daemon.watch import EventLog
from agent.hardware.events import ReaderStatus
from tests.daemon.support import Device, LivePortal


def test_event_log_long_poll_from_now_and_after_a_cursor() -> None:
    log = EventLog(size=3)
    assert log.wait(0, 0) == {"cursor": 1, "events": []}  # never 0: that means "from now"
    log.publish({"n": 0})
    assert log.wait(0, 0) == {"cursor": 2, "events": []}  # 0 means from now
    threading.Timer(0.05, log.publish, args=({"n": 1},)).start()
    answer = log.wait(2, 5000)
    assert answer == {"cursor": 3, "events": [{"n": 1}]}
    for n in range(2, 7):
        log.publish({"n": n})
    behind = log.wait(3, 0)
    assert behind["missed"] is True and [e["n"] for e in behind["events"]] == [4, 5, 6]
    assert log.wait(99, 0)["cursor"] == 8  # a cursor of an earlier run: from now


def test_interval_and_reader_health_and_status_line() -> None:
    interval = Interval(10, now=0)
    assert not interval.due(9.9) and interval.due(10) and not interval.due(10.5)
    assert interval.due(35) and interval.next_at == 35  # late: no burst of catch-up beats
    health = ReaderHealth(["a", "b"])
    assert health.apply(ReaderStatus("a", "fault", "port gone")) and health.any_fault
    assert not health.apply(ReaderStatus("a", "fault", "still gone"))
    assert health.apply(ReaderStatus("a", "recovered", "back")) and not health.any_fault
    assert status_line(3, UploadState()) == "3 pending; no upload yet"
    line = status_line(0, UploadState(last_upload_ms=1_000, last_error="timeout"), now_ms=61_000)
    assert line == "0 pending; last upload 1970-01-01 00:00:01 UTC (60 s ago); error: timeout"


@pytest.fixture
def notify() -> Iterator[tuple[socket.socket, str]]:
    path = os.path.join(tempfile.mkdtemp(prefix="qn"), "n")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def test_notifier_speaks_sd_notify_and_is_silent_outside_systemd(
    notify: tuple[socket.socket, str],
) -> None:
    sock, path = notify
    Notifier({}).ready("x")  # no NOTIFY_SOCKET: nothing happens, nothing raises
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    assert notifier.watchdog_s == 2.0
    notifier.ready("0 pending")
    lines = sock.recv(1000).decode().splitlines()
    assert lines[:2] == ["READY=1", "STATUS=0 pending"] and lines[2] == f"MAINPID={os.getpid()}"
    assert Notifier({"WATCHDOG_USEC": "5", "WATCHDOG_PID": "1"}).watchdog_s is None


def test_watchdog_pings_only_while_the_writer_lives(
    tmp_path: Path,
    portal: LivePortal,
    device: Device,
    notify: tuple[socket.socket, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sock, path = notify
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "300000")
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    daemon = Daemon(load_config(device.config_path))
    daemon.open()
    daemon.start()
    loop = threading.Thread(target=daemon._loop, daemon=True)
    loop.start()
    try:
        assert daemon.healthy()
        assert b"WATCHDOG=1" in sock.recv(1000)
        assert daemon.pump is not None
        daemon.pump.stop(2.0)  # the writer thread ends: the daemon is no longer healthy
        assert not daemon.healthy()
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):  # drain what was sent before the stop
            while True:
                sock.recv(1000)
        sock.settimeout(1.0)
        received: list[bytes] = []
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                received.append(sock.recv(1000))
            except TimeoutError:
                break
        assert not any(b"WATCHDOG=1" in data for data in received)
    finally:
        daemon.stop_event.set()
        loop.join(5)
        daemon.shutdown()
