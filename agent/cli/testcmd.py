"""``qatysu test reader|door|feedback``: live hardware checks for the technician.

With the daemon stopped the command opens the hardware itself; while the
daemon runs it owns the hardware, so the command asks it over the control
socket (``watch`` for taps and door changes, ``feedback`` for patterns).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import click

from agent.cli.base import Context, Exit, cli
from agent.cli.output import echo_json
from agent.config import AgentConfig, load_config
from agent.control.client import ControlClient, daemon_running
from agent.exceptions import ControlError, QatysuError
from agent.hardware.events import BadgeRead, ReaderStatus, SensorChange
from agent.hardware.feedback import PATTERNS

__all__ = ["local_door_events", "local_reader_events", "play_local"]

_WATCH_SLICE_MS = 1000


def _pick(names: Sequence[str], name: str | None, what: str) -> list[str]:
    if name is None:
        if not names:
            raise Exit(f"no {what} in the config", 2)
        return list(names)
    if name not in names:
        raise Exit(
            f"--name: no {what} named {name!r} (configured: {', '.join(names) or 'none'})", 2
        )
    return [name]


def _drain(events: queue.Queue[Any], deadline: float, stop: threading.Event) -> Iterator[Any]:
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            yield events.get(timeout=min(remaining, 0.2))
        except queue.Empty:
            continue


def local_reader_events(
    config: AgentConfig, names: list[str], timeout_s: float
) -> Iterator[BadgeRead | ReaderStatus]:
    """Run the named readers in threads and yield what they report until the timeout."""
    from agent.readers.registry import create_reader

    readers = [create_reader(cfg) for cfg in config.readers if cfg.name in names]
    events: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    threads = [
        threading.Thread(target=r.run, args=(events.put, stop), name=f"test-{r.name}", daemon=True)
        for r in readers
    ]
    for thread in threads:
        thread.start()
    try:
        yield from _drain(events, time.monotonic() + timeout_s, stop)
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
        for reader in readers:
            reader.close()


def local_door_events(
    config: AgentConfig,
    names: list[str],
    timeout_s: float,
    *,
    pin_factory: Any,
    on_start: Callable[[list[tuple[str, str, str]]], None] | None = None,
) -> Iterator[SensorChange]:
    """Watch the named door and tamper sensors on ``pin_factory``; yield settled changes.

    ``on_start`` gets (kind, name, state) of every sensor once they are read.
    """
    from agent.hardware.sensors import build_sensors, poll_sensors

    picked = replace(
        config,
        doors=tuple(d for d in config.doors if d.name in names),
        tamper=tuple(t for t in config.tamper if t.name in names),
    )
    events: queue.Queue[Any] = queue.Queue()
    sensors = build_sensors(picked, pin_factory=pin_factory, on_change=events.put)
    stop = threading.Event()
    poller = threading.Thread(target=poll_sensors, args=(sensors, stop), daemon=True)
    try:
        if on_start is not None:
            on_start([(s.kind, s.name, s.state) for s in sensors])
        poller.start()
        yield from _drain(events, time.monotonic() + timeout_s, stop)
    finally:
        stop.set()
        if poller.is_alive():
            poller.join(5)
        for sensor in sensors:
            sensor.close()


def play_local(config: AgentConfig, patterns: list[str], *, pin_factory: Any) -> None:
    """Play ``patterns`` one after the other on the configured LEDs and buzzer."""
    from agent.hardware.feedback import Feedback

    feedback = Feedback(config.feedback, pin_factory=pin_factory)
    try:
        for name in patterns:
            feedback.play(name)
            feedback.idle.wait(0.05)  # let the player pick it up before waiting for idle
            if not feedback.idle.wait(30):
                raise Exit(f"feedback: pattern {name} did not finish within 30 s")
    finally:
        feedback.close()


def _watch_daemon(
    client: ControlClient, kinds: set[str], names: list[str], timeout_s: float
) -> Iterator[dict[str, Any]]:
    """Long-poll the daemon's live events of ``kinds`` from now until the timeout."""
    deadline = time.monotonic() + timeout_s
    cursor = 0
    while (remaining := deadline - time.monotonic()) > 0:
        answer = client.request(
            "watch", after=cursor, wait_ms=int(min(remaining * 1000, _WATCH_SLICE_MS))
        )
        cursor = int(answer.get("cursor", cursor))
        for event in answer.get("events", []):
            who = event.get("reader", event.get("sensor"))
            if event.get("kind") in kinds and who in names:
                yield event


def _factory() -> Any:
    from gpiozero.exc import PinFactoryFallback

    from agent.hardware.gpio import make_pin_factory

    # gpiozero warns once per backend it skips; the error that follows says enough.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PinFactoryFallback)
        return make_pin_factory()


def _options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")(func)
    func = click.option(
        "--timeout",
        "timeout_s",
        type=click.FloatRange(min=0.1),
        metavar="S",
        default=30.0,
        show_default=True,
        help="Seconds to watch.",
    )(func)
    return func


@cli.group("test")
def test_group() -> None:
    """Live hardware checks: taps, door changes, LEDs and buzzer.

    They open the hardware directly when the agent is stopped, and ask the
    running agent over its control socket otherwise.
    """


@test_group.command("reader")
@click.option("--name", help="Only this reader (default: all).")
@_options
@click.pass_obj
def test_reader(obj: Context, name: str | None, timeout_s: float, as_json: bool) -> int:
    """Show each card tapped on the readers (UID as the records will carry it).

    Exit 0 when at least one card was read before --timeout, 1 otherwise.
    With --json: one object per read with reader, driver, uid and uid_len.
    """
    config = load_config(obj.config_path)
    names = _pick([r.name for r in config.readers], name, "reader")
    socket_path = config.device.control_socket
    running = daemon_running(socket_path)
    via = "the running agent" if running else "the hardware directly"
    click.echo(f"tap a card on {', '.join(names)} ({timeout_s:g} s, via {via})", err=True)
    reads = 0
    try:
        if running:
            client = ControlClient(socket_path)
            for event in _watch_daemon(client, {"badge"}, names, timeout_s):
                reads += 1
                _show_read(event, as_json)
        else:
            with _quiet_reader_logs():
                for item in local_reader_events(config, names, timeout_s):
                    if isinstance(item, BadgeRead):
                        reads += 1
                        _show_read(item.record_data(), as_json)
                    elif item.state == "fault":
                        # The reader would retry until the timeout: the fault is the answer.
                        raise Exit(f"reader {item.reader}: {item.detail}")
                    else:
                        click.echo(f"reader {item.reader}: {item.state}: {item.detail}", err=True)
    except (ControlError, QatysuError) as exc:
        raise Exit(str(exc)) from exc
    if not reads:
        raise Exit(f"no card read on {', '.join(names)} within {timeout_s:g} s")
    return 0


@contextlib.contextmanager
def _quiet_reader_logs() -> Iterator[None]:
    """The readers log each fault they also report; this command prints the report, so
    their log lines (otherwise on stderr through logging's last resort) are dropped."""
    readers = logging.getLogger("agent.readers")
    quiet = logging.NullHandler()
    readers.addHandler(quiet)
    readers.propagate = False
    try:
        yield
    finally:
        readers.removeHandler(quiet)
        readers.propagate = True


def _show_read(data: dict[str, Any], as_json: bool) -> None:
    read = {k: data.get(k) for k in ("reader", "driver", "uid", "uid_len")}
    if as_json:
        echo_json(read)
    else:
        click.echo(f"{read['reader']}: {read['uid']} ({read['uid_len']} bytes, {read['driver']})")


@test_group.command("door")
@click.option("--name", help="Only this door or tamper sensor (default: all).")
@_options
@click.pass_obj
def test_door(obj: Context, name: str | None, timeout_s: float, as_json: bool) -> int:
    """Show each door and tamper change (open or closed) after debouncing.

    Prints the state found at start, then every change. Exit 0 when a change
    was seen before --timeout, 1 otherwise (open and close the door to check).
    """
    config = load_config(obj.config_path)
    names = _pick([s.name for s in (*config.doors, *config.tamper)], name, "door or tamper sensor")
    socket_path = config.device.control_socket
    changes = 0

    def show(kind: str, sensor: str, state: str, initial: bool = False) -> None:
        if as_json:
            echo_json({"kind": kind, "sensor": sensor, "state": state, "initial": initial})
        else:
            click.echo(f"{kind} {sensor}: {state}{' (now)' if initial else ''}")

    try:
        if daemon_running(socket_path):
            client = ControlClient(socket_path)
            doors = client.request("status").get("doors") or {}
            for sensor, state in doors.items():
                if sensor in names:
                    show("door", sensor, state, True)
            for event in _watch_daemon(client, {"door", "tamper"}, names, timeout_s):
                changes += 1
                show(event["kind"], event["sensor"], event["state"])
        else:

            def initial(states: list[tuple[str, str, str]]) -> None:
                for kind, sensor, state in states:
                    show(kind, sensor, state, True)

            events = local_door_events(
                config, names, timeout_s, pin_factory=_factory(), on_start=initial
            )
            for change in events:
                changes += 1
                show(change.kind, change.sensor, change.state)
    except (ControlError, QatysuError) as exc:
        raise Exit(str(exc)) from exc
    if not changes:
        raise Exit(f"no change on {', '.join(names)} within {timeout_s:g} s")
    return 0


@test_group.command("feedback")
@click.option(
    "--name",
    "--pattern",
    "pattern",
    type=click.Choice(sorted(PATTERNS)),
    help="Play only this pattern (default: accepted, then cannot_persist).",
)
@_options
@click.pass_obj
def test_feedback(obj: Context, pattern: str | None, timeout_s: float, as_json: bool) -> None:
    """Blink the LEDs and sound the buzzer as a badge read does.

    accepted: green and a short beep; cannot_persist: red and a long beep;
    reader_fault: red blinking; offline_backlog: both LEDs every 3 s.
    """
    config = load_config(obj.config_path)
    fb = config.feedback
    if fb.green_pin is None and fb.red_pin is None and fb.buzzer_pin is None:
        raise Exit(f"{obj.config_path}: [feedback] has no pins (green_pin, red_pin, buzzer_pin)", 2)
    patterns = [pattern] if pattern else ["accepted", "cannot_persist"]
    socket_path = config.device.control_socket
    try:
        if daemon_running(socket_path):
            client = ControlClient(socket_path, timeout_s=timeout_s)
            for index, name in enumerate(patterns):
                if index:
                    time.sleep(2)  # let the previous pattern play out first
                client.request("feedback", pattern=name)
                _said(name, as_json, "the running agent")
        else:
            factory = _factory()
            for name in patterns:
                play_local(config, [name], pin_factory=factory)
                _said(name, as_json, "the pins directly")
    except (ControlError, QatysuError) as exc:
        raise Exit(str(exc)) from exc


def _said(pattern: str, as_json: bool, via: str) -> None:
    if as_json:
        echo_json({"pattern": pattern, "ok": True})
    else:
        click.echo(f"played {pattern} (via {via})")
