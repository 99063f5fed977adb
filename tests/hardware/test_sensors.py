"""Door and tamper sensors on gpiozero's MockFactory, debounced on an injected clock."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from agent.clock import ManualClock, SystemClock
from agent.config import SensorConfig, config_from_dict
from agent.exceptions import ConfigError
from agent.hardware.debounce import Debouncer
from agent.hardware.events import SensorChange
from agent.hardware.sensors import Sensor, build_sensors, poll_sensors


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


def door(
    factory: MockFactory, clock: ManualClock, changes: list[SensorChange], **kw: object
) -> Sensor:
    cfg = SensorConfig(name="main", pin=17, **kw)  # type: ignore[arg-type]
    return Sensor(cfg, "door", pin_factory=factory, on_change=changes.append, clock=clock)


def test_debouncer_alone() -> None:
    d = Debouncer(0.05, initial=False)
    assert d.observe(True, 0.0) is None
    assert d.deadline() == pytest.approx(0.05)
    assert d.observe(False, 0.01) is None  # bounce back: the timer starts again
    assert d.observe(True, 0.02) is None
    assert d.observe(True, 0.069) is None
    assert d.observe(True, 0.07) is True
    assert d.deadline() is None


def test_bouncing_contact_gives_one_settled_change(factory: MockFactory) -> None:
    clock, changes = ManualClock(), []
    sensor = door(factory, clock, changes, debounce_ms=50)
    pin = factory.pin(17)
    assert sensor.state == "open"  # pulled up, no magnet: open
    for _ in range(6):  # the reed chatters as the door shuts
        pin.drive_low()
        clock.advance(0.004)
        pin.drive_high()
        clock.advance(0.003)
    pin.drive_low()
    clock.advance(0.03)
    sensor.check()
    assert changes == []
    clock.advance(0.03)
    sensor.check()  # the periodic read after the level held for 50 ms
    assert changes == [SensorChange("door", "main", "closed")]
    sensor.check()
    assert len(changes) == 1


def test_pulse_shorter_than_debounce_is_ignored(factory: MockFactory) -> None:
    clock, changes = ManualClock(), []
    sensor = door(factory, clock, changes, debounce_ms=50)
    pin = factory.pin(17)
    pin.drive_low()
    clock.advance(0.02)
    pin.drive_high()
    clock.advance(1.0)
    sensor.check()
    assert changes == [] and sensor.state == "open"


def test_missed_edge_is_caught_by_the_periodic_read(factory: MockFactory) -> None:
    got: queue.Queue[SensorChange] = queue.Queue()
    cfg = SensorConfig(name="main", pin=17, debounce_ms=10, poll_ms=20)
    sensor = Sensor(cfg, "door", pin_factory=factory, on_change=got.put, clock=SystemClock())
    pin = factory.pin(17)
    stop = threading.Event()
    thread = threading.Thread(target=poll_sensors, args=([sensor], stop), daemon=True)
    thread.start()
    try:
        pin.edges = "none"  # the interrupt is lost
        pin.drive_low()
        pin.edges = "both"
        assert got.get(timeout=5) == SensorChange("door", "main", "closed")
    finally:
        stop.set()
        thread.join(5)
        sensor.close()
    assert not thread.is_alive()


def test_door_held_open_is_logged_once(
    factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    clock, changes = ManualClock(), []
    sensor = door(factory, clock, changes, held_open_s=300)
    caplog.set_level(logging.WARNING, logger="agent.hardware.sensors")
    clock.advance(299)
    sensor.check()
    assert not caplog.records
    clock.advance(2)
    sensor.check()
    sensor.check()
    held = [r for r in caplog.records if "held open" in r.getMessage()]
    assert len(held) == 1 and "door main" in held[0].getMessage()


@pytest.mark.parametrize(
    ("pull", "open_when", "open_level"),
    [("up", "high", True), ("up", "low", False), ("down", "high", True), ("none", "low", False)],
)
def test_pull_and_open_when(
    factory: MockFactory, pull: str, open_when: str, open_level: bool
) -> None:
    clock, changes = ManualClock(), []
    sensor = door(factory, clock, changes, pull=pull, open_when=open_when, debounce_ms=0)
    pin = factory.pin(17)
    (pin.drive_high if open_level else pin.drive_low)()
    sensor.check()
    assert sensor.state == "open"
    (pin.drive_low if open_level else pin.drive_high)()
    assert sensor.state == "closed"  # debounce 0: the edge settles it


def test_tamper_and_build_from_config(factory: MockFactory) -> None:
    config = config_from_dict(
        {
            "doors": [{"name": "main", "pin": 17}],
            "tamper": [{"name": "lid", "pin": 27, "debounce_ms": 0}],
        }
    )
    changes: list[SensorChange] = []
    sensors = build_sensors(
        config, pin_factory=factory, on_change=changes.append, clock=ManualClock()
    )
    assert [(s.kind, s.name) for s in sensors] == [("door", "main"), ("tamper", "lid")]
    assert all(s.device.pin_factory is factory for s in sensors)  # never the global one
    factory.pin(27).drive_low()  # lid shut presses the switch to GND
    factory.pin(27).drive_high()  # lid opened
    assert changes == [
        SensorChange("tamper", "lid", "closed"),
        SensorChange("tamper", "lid", "open"),
    ]


def test_bad_pull_is_a_config_error(factory: MockFactory) -> None:
    with pytest.raises(ConfigError, match=r"doors 'main': pull must be up, down or none"):
        door(factory, ManualClock(), [], pull="pullup")


def test_make_pin_factory() -> None:
    from agent.exceptions import HardwareError
    from agent.hardware.gpio import make_pin_factory

    assert isinstance(make_pin_factory("mock"), MockFactory)
    assert type(make_pin_factory("Mock")).__name__ == "MockFactory"  # by entry point
    with pytest.raises(HardwareError, match="unknown GPIO pin factory 'nope'"):
        make_pin_factory("nope")
