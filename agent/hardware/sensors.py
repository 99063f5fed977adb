"""Door and tamper sensors through gpiozero, with the pin factory passed in.

Each :class:`Sensor` wraps one ``DigitalInputDevice``. Edges and a periodic
read of ``.value`` (every ``poll_ms``, so a missed interrupt is caught) both
feed the sans-I/O :class:`~agent.hardware.debounce.Debouncer`; every settled change
calls ``on_change`` with a :class:`~agent.hardware.events.SensorChange`. A door held
open past ``held_open_s`` is logged once per opening. The level found at
start is :attr:`Sensor.state` and makes no change of its own (the daemon can
put it in the ``boot`` record).

Wiring (docs/hardware.md): a reed switch between the GPIO and GND with
``pull = "up"`` reads low while the magnet holds it closed and high when the
door opens, hence ``open_when = "high"``. gpiozero takes ``active_state``
only when there is no pull, so with ``pull = "none"`` "active" means open;
with a pull, "active" is fixed by the pull and ``open_when`` is applied here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from gpiozero import DigitalInputDevice
from gpiozero.exc import GPIOZeroError

from agent.clock import Clock, SystemClock
from agent.exceptions import ConfigError, HardwareError
from agent.hardware.debounce import Debouncer
from agent.hardware.events import SensorChange
from agent.hardware.settings import SensorConfig

if TYPE_CHECKING:
    from agent.config import AgentConfig

__all__ = ["Sensor", "build_sensors", "poll_sensors"]

logger = logging.getLogger(__name__)

Kind = Literal["door", "tamper"]
OnChange = Callable[[SensorChange], None]
_PULLS: dict[str, bool | None] = {"up": True, "down": False, "none": None}


class Sensor:
    def __init__(
        self,
        cfg: SensorConfig,
        kind: Kind,
        *,
        pin_factory: Any,
        on_change: OnChange,
        clock: Clock | None = None,
    ) -> None:
        where = f"{'doors' if kind == 'door' else 'tamper'} {cfg.name!r}"
        if cfg.pull not in _PULLS:
            raise ConfigError(f"{where}: pull must be up, down or none, not {cfg.pull!r}")
        if cfg.open_when not in ("high", "low"):
            raise ConfigError(f"{where}: open_when must be high or low, not {cfg.open_when!r}")
        self.cfg = cfg
        self.kind = kind
        self.name = cfg.name
        self.on_change = on_change
        self.clock: Clock = clock if clock is not None else SystemClock()
        pull_up = _PULLS[cfg.pull]
        active_state = (cfg.open_when == "high") if pull_up is None else None
        try:
            self.device = DigitalInputDevice(
                cfg.pin, pull_up=pull_up, active_state=active_state, pin_factory=pin_factory
            )
        except (GPIOZeroError, OSError, RuntimeError) as exc:
            raise HardwareError(f"{where}: GPIO{cfg.pin}: {exc}") from exc
        self._lock = threading.Lock()
        now = self.clock.monotonic()
        self._debouncer = Debouncer(cfg.debounce_ms / 1000, self._read_open())
        self._opened_at: float | None = now if self._debouncer.settled else None
        self._held_logged = False
        self._next_poll = now
        self.device.when_activated = self._edge
        self.device.when_deactivated = self._edge

    @property
    def state(self) -> Literal["open", "closed"]:
        return "open" if self._debouncer.settled else "closed"

    def _read_open(self) -> bool:
        active = bool(self.device.value)
        if self.cfg.pull == "none":
            return active  # active_state was set from open_when
        high = not active if self.cfg.pull == "up" else active
        return high == (self.cfg.open_when == "high")

    def _edge(self) -> None:
        self.check()

    def check(self) -> SensorChange | None:
        """Read the pin now; emit and return the settled change, if any."""
        with self._lock:
            now = self.clock.monotonic()
            try:
                level = self._read_open()
            except (GPIOZeroError, OSError) as exc:
                logger.warning(
                    "%s %s: cannot read GPIO%d: %s", self.kind, self.name, self.cfg.pin, exc
                )
                return None
            settled = self._debouncer.observe(level, now)
            change = None
            if settled is not None:
                change = SensorChange(self.kind, self.name, "open" if settled else "closed")
                self._opened_at = now if settled else None
                self._held_logged = False
            if (
                self.kind == "door"
                and self._opened_at is not None
                and not self._held_logged
                and now - self._opened_at > self.cfg.held_open_s
            ):
                self._held_logged = True
                logger.warning(
                    "door %s held open for %.0f s (over %d s)",
                    self.name,
                    now - self._opened_at,
                    self.cfg.held_open_s,
                )
            if change is not None:
                # Emitted under the lock: the edge thread and the poll thread
                # must not deliver two changes in the wrong order.
                logger.info("%s %s %s", self.kind, self.name, change.state)
                self.on_change(change)
        return change

    def next_check(self) -> float:
        """Monotonic time of the next periodic read: the poll, or sooner to settle a level."""
        if self.clock.monotonic() >= self._next_poll:
            self._next_poll = self.clock.monotonic() + self.cfg.poll_ms / 1000
        deadline = self._debouncer.deadline()
        return self._next_poll if deadline is None else min(self._next_poll, deadline)

    def close(self) -> None:
        self.device.close()

    def __repr__(self) -> str:
        return f"<Sensor {self.kind} {self.name!r} GPIO{self.cfg.pin} {self.state}>"


def build_sensors(
    config: AgentConfig, *, pin_factory: Any, on_change: OnChange, clock: Clock | None = None
) -> list[Sensor]:
    """Every ``[[doors]]`` and ``[[tamper]]`` entry; closes what was built if one fails."""
    sensors: list[Sensor] = []
    entries: list[tuple[SensorConfig, Kind]] = [(c, "door") for c in config.doors]
    entries += [(c, "tamper") for c in config.tamper]
    try:
        for cfg, kind in entries:
            sensors.append(
                Sensor(cfg, kind, pin_factory=pin_factory, on_change=on_change, clock=clock)
            )
    except Exception:
        for sensor in sensors:
            sensor.close()
        raise
    return sensors


def poll_sensors(sensors: Sequence[Sensor], stop: threading.Event) -> None:
    """The periodic read for all sensors, in one thread, until ``stop`` is set.

    Edges already call :meth:`Sensor.check`; this loop catches missed edges
    and settles a level once its debounce time has passed without an edge.
    """
    while not stop.is_set():
        if not sensors:
            stop.wait()
            return
        now = min(s.clock.monotonic() for s in sensors)
        wake = min(s.next_check() for s in sensors)
        stop.wait(max(0.0, min(wake - now, 1.0)))
        for sensor in sensors:
            sensor.check()
