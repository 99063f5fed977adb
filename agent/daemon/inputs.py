"""Reader and sensor threads, supervised so that a driver bug cannot end reading.

A reader's ``run`` never raises for hardware trouble (it reports a fault and
retries); should it raise anyway, or return while the daemon still runs, the
supervisor records a fault, waits, and starts it again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from agent.backoff import Backoff
from agent.hardware.events import ReaderStatus
from agent.hardware.sensors import Sensor, poll_sensors
from agent.readers.base import Emit, Reader

__all__ = ["ReaderThread", "SensorThread"]

logger = logging.getLogger(__name__)

RESTART_S = (1.0, 30.0)  # first and longest wait before a crashed driver is restarted


class ReaderThread:
    def __init__(self, reader: Reader[Any], emit: Emit, stop: threading.Event) -> None:
        self.reader = reader
        self.emit = emit
        self.stop = stop
        self.thread = threading.Thread(
            target=self._supervise, name=f"reader-{reader.name}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def _supervise(self) -> None:
        backoff = Backoff(*RESTART_S)
        while not self.stop.is_set():
            try:
                self.reader.run(self.emit, self.stop)
                if self.stop.is_set():
                    break
                detail = "driver returned while the daemon runs"
            except Exception as exc:
                logger.exception("reader %s crashed", self.reader.name)
                detail = f"driver crashed: {type(exc).__name__}: {exc}"
            self.emit(ReaderStatus(self.reader.name, "fault", detail))
            if self.stop.wait(backoff.failure()):
                break
            self.emit(ReaderStatus(self.reader.name, "recovered", "driver restarted"))
        try:
            self.reader.close()
        except Exception:
            logger.exception("reader %s: close failed", self.reader.name)

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()


class SensorThread:
    """The periodic read of every door and tamper sensor (edges arrive on gpiozero's threads)."""

    def __init__(self, sensors: Sequence[Sensor], stop: threading.Event) -> None:
        self.sensors = list(sensors)
        self.stop = stop
        self.thread = threading.Thread(target=self._run, name="sensors", daemon=True)

    def start(self) -> None:
        if self.sensors:
            self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                poll_sensors(self.sensors, self.stop)
            except Exception:
                logger.exception("sensor polling failed; restarting it")
                self.stop.wait(1.0)

    def join(self, timeout: float) -> None:
        if self.thread.is_alive():
            self.thread.join(timeout)
        for sensor in self.sensors:
            try:
                sensor.close()
            except Exception:
                logger.exception("sensor %s: close failed", sensor.name)

    @property
    def alive(self) -> bool:
        return not self.sensors or self.thread.is_alive()
