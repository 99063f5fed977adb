"""`qatysu test reader|door|feedback`: on the hardware directly, or through the daemon."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from agent.cli.testcmd import local_door_events, play_local
from agent.readers.simulated import tap
from tests.cli.conftest import Run, Site, make_site
from tests.cli.daemon_stub import daemon_side


def tap_when_listening(socket_path: Path, *uids: str) -> threading.Thread:
    def go() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if socket_path.is_socket():
                tap(socket_path, *uids)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def test_reader_on_the_hardware_prints_json_lines(sim_site: Site, run: Run) -> None:
    thread = tap_when_listening(sim_site.socket.parent / "sim.sock", "04A1B2C3", "0411223344556677")
    result = run("--config", sim_site.config, "test", "reader", "--timeout", "2", "--json")
    thread.join(5)
    assert result.code == 0, result.err
    assert result.lines() == [
        {"reader": "demo", "driver": "simulated", "uid": "04A1B2C3", "uid_len": 4},
        {"reader": "demo", "driver": "simulated", "uid": "0411223344556677", "uid_len": 8},
    ]
    assert "via the hardware directly" in result.err


def test_reader_plain_output(sim_site: Site, run: Run) -> None:
    thread = tap_when_listening(sim_site.socket.parent / "sim.sock", "04A1B2C3")
    result = run(
        "--config", sim_site.config, "test", "reader", "--name", "demo", "--timeout", "1.5"
    )
    thread.join(5)
    assert result.code == 0
    assert result.out == "demo: 04A1B2C3 (4 bytes, simulated)\n"


def test_reader_without_a_tap_fails_after_the_timeout(sim_site: Site, run: Run) -> None:
    result = run("--config", sim_site.config, "test", "reader", "--timeout", "0.5")
    assert result.code == 1
    assert result.err.splitlines()[-1] == "qatysu: error: no card read on demo within 0.5 s"


def test_unknown_reader_name_is_a_usage_error(sim_site: Site, run: Run) -> None:
    result = run("--config", sim_site.config, "test", "reader", "--name", "back")
    assert result.code == 2
    assert "--name: no reader named 'back' (configured: demo)" in result.err


def test_bad_timeout_is_a_usage_error(sim_site: Site, run: Run) -> None:
    assert run("--config", sim_site.config, "test", "reader", "--timeout", "0").code == 2
    assert run("--config", sim_site.config, "test", "lamp").code == 2


def test_reader_through_the_running_daemon(site: Site, run: Run) -> None:
    with daemon_side(site.socket) as daemon:

        def later() -> None:
            deadline = time.monotonic() + 5
            while not daemon.requests and time.monotonic() < deadline:
                time.sleep(0.01)
            daemon.push(
                {"kind": "door", "sensor": "main", "state": "open"},
                {
                    "kind": "badge",
                    "reader": "entrance",
                    "driver": "mfrc522",
                    "uid": "04A1B2C3",
                    "uid_len": 4,
                },
            )

        thread = threading.Thread(target=later, daemon=True)
        thread.start()
        result = run("--config", site.config, "test", "reader", "--timeout", "2", "--json")
        thread.join(5)
    assert result.code == 0, result.err
    assert result.lines() == [
        {"reader": "entrance", "driver": "mfrc522", "uid": "04A1B2C3", "uid_len": 4}
    ]
    assert "via the running agent" in result.err
    assert daemon.requests[0] == ("watch", {"after": 0, "wait_ms": 1000})


def test_door_through_the_running_daemon(site: Site, run: Run) -> None:
    with daemon_side(site.socket) as daemon:
        daemon.push({"kind": "noise"})  # before "now": not shown

        def later() -> None:
            deadline = time.monotonic() + 5
            while len(daemon.requests) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            daemon.push({"kind": "tamper", "sensor": "enclosure", "state": "open"})

        thread = threading.Thread(target=later, daemon=True)
        thread.start()
        result = run("--config", site.config, "test", "door", "--timeout", "2")
        thread.join(5)
    assert result.code == 0, result.err
    assert result.out == "door main: closed (now)\ntamper enclosure: open\n"


def test_feedback_through_the_running_daemon(site: Site, run: Run) -> None:
    with daemon_side(site.socket) as daemon:
        result = run(
            "--config", site.config, "test", "feedback", "--pattern", "reader_fault", "--json"
        )
    assert result.code == 0, result.err
    assert result.lines() == [{"pattern": "reader_fault", "ok": True}]
    assert ("feedback", {"pattern": "reader_fault"}) in daemon.requests


def test_unknown_pattern_is_a_usage_error(site: Site, run: Run) -> None:
    result = run("--config", site.config, "test", "feedback", "--name", "nonsense")
    assert result.code == 2 and "nonsense" in result.err


def test_daemon_error_answer_is_one_line_exit_1(site: Site, run: Run) -> None:
    with daemon_side(site.socket) as daemon:
        daemon.status = {"error": "status not ready"}
        result = run("--config", site.config, "test", "door", "--timeout", "1")
    assert result.code == 1
    last = result.err.strip().splitlines()[-1]
    assert last.startswith("qatysu: error: ") and last.endswith("status not ready")


def test_door_on_mock_pins_prints_the_state_and_fails_without_a_change(
    site: Site, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    result = run("--config", site.config, "test", "door", "--timeout", "0.3", "--json")
    assert result.code == 1
    # a mock pin with the pull-up reads high: open_when = "high", so open
    assert result.lines() == [
        {"kind": "door", "sensor": "main", "state": "open", "initial": True},
        {"kind": "tamper", "sensor": "enclosure", "state": "open", "initial": True},
    ]
    assert "no change on main, enclosure within 0.3 s" in result.err


def test_door_core_yields_debounced_changes_from_the_pins(site: Site) -> None:
    states: list[tuple[str, str, str]] = []
    factory = MockFactory()
    events = local_door_events(
        site.load(), ["main"], 3.0, pin_factory=factory, on_start=states.extend
    )
    pin = factory.pin(17)

    def close_door() -> None:
        deadline = time.monotonic() + 5
        while not states and time.monotonic() < deadline:
            time.sleep(0.01)
        pin.drive_low()  # the magnet closes the reed switch

    threading.Thread(target=close_door, daemon=True).start()
    change = next(events)
    events.close()
    assert (change.kind, change.sensor, change.state) == ("door", "main", "closed")
    assert states[0] == ("door", "main", "open")


def test_feedback_on_mock_pins_plays_each_pattern(
    site: Site, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    result = run("--config", site.config, "test", "feedback")
    assert result.code == 0, result.err
    assert result.out == (
        "played accepted (via the pins directly)\nplayed cannot_persist (via the pins directly)\n"
    )


def test_feedback_core_drives_the_led_and_buzzer_pins(site: Site) -> None:
    factory = MockFactory()
    play_local(site.load(), ["accepted"], pin_factory=factory)
    went_high = {n for n in (5, 6, 13) if any(s.state for s in factory.pin(n).states)}
    assert went_high == {5, 13}  # green and the buzzer, never red


def test_feedback_without_pins_is_a_config_error(sim_site: Site, run: Run) -> None:
    result = run("--config", sim_site.config, "test", "feedback")
    assert result.code == 2
    assert "[feedback] has no pins (green_pin, red_pin, buzzer_pin)" in result.err


def test_door_without_gpio_names_the_problem(site: Site, run: Run) -> None:
    # no GPIO on this machine and no mock factory asked for
    result = run("--config", site.config, "test", "door", "--timeout", "0.2")
    assert result.code == 1
    assert "GPIO" in result.err and len(result.err.strip().splitlines()) == 1


def test_door_without_sensors(sim_site: Site, run: Run) -> None:
    result = run("--config", sim_site.config, "test", "door")
    assert result.code == 2 and "no door or tamper sensor in the config" in result.err


def test_reader_fault_is_printed_once_and_ends_the_test(
    tmp_path: Path, short_dir: Path, run: Run
) -> None:
    """A serial port that is not there: one line, at once (it waited all 30 s, and the
    reader's own log line repeated the fault). A child process, as the technician runs
    it: pytest's log capture would hide a duplicate printed through logging."""
    site = make_site(tmp_path, short_dir, run, "pi-rdm6300-uart")
    port = tmp_path / "ttyNOPE"
    assert run("--config", site.config, "config", "set", "readers.0.port", port).code == 0
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(site.config), "test", "reader"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert time.monotonic() - started < 15  # the default --timeout is 30 s
    assert (done.returncode, done.stdout) == (1, "")
    lines = done.stderr.splitlines()
    assert lines[0] == "tap a card on entrance (30 s, via the hardware directly)"
    assert len(lines) == 2 and lines[1].startswith(f"qatysu: error: reader entrance: port {port}: ")
