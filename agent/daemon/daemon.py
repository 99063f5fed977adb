"""``qatysu run``: the wiring and the main loop.

Threads: one per reader, one polling the sensors (edges come on gpiozero's
threads), the writer (:class:`EventPump`), the uploader, the control socket
(one per connection) and feedback. The main thread starts them, writes
``heartbeat`` records, pings the systemd watchdog while everything is alive
and handles SIGTERM: stop the inputs, finish the record in progress and
those already queued, close the buffer, remove the socket, all within 5 s.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from agent.buffer.files import permission_denied
from agent.clock import Clock, SystemClock
from agent.config import AgentConfig
from agent.control.server import ControlServer
from agent.daemon.boot import (
    boot_data,
    config_sha256,
    read_last_config_hash,
    remember_config_hash,
)
from agent.daemon.commands import command_table
from agent.daemon.health import Interval, ReaderHealth, UploadState, status_line
from agent.daemon.inputs import ReaderThread, SensorThread
from agent.daemon.pump import EventPump
from agent.daemon.systemd import Notifier
from agent.daemon.uplink_wiring import make_uploader
from agent.daemon.uploads import UploadLoop
from agent.daemon.watch import EventLog
from agent.exceptions import BufferFullError, ConfigError, HardwareError
from agent.hardware.feedback import Feedback
from agent.hardware.gpio import make_pin_factory
from agent.hardware.sensors import Sensor, build_sensors
from agent.readers.registry import create_reader
from agent.records.store import RecordStore, open_store
from agent.uplink.uploader import Uploader, UploadResult

__all__ = ["Daemon", "check_enrolled", "outbox"]

logger = logging.getLogger(__name__)

STOP_DEADLINE_S = 5.0
STATUS_EVERY_S = 5.0


def outbox(config: AgentConfig) -> Path:
    """``<state_dir>/outbox``: bundles the daemon exports for ``qatysu export`` to copy."""
    return config.device.state_dir / "outbox"


def check_enrolled(config: AgentConfig) -> None:
    """Refuse to run before ``qatysu enroll`` (one line naming the file and key)."""
    where = str(config.path) if config.path else "config"
    portal = config.portal
    for key, value in (
        ("device_id", portal.device_id),
        ("public_key", portal.public_key),
        ("url", portal.url),
    ):
        if not value:
            raise ConfigError(
                f"{where}: portal.{key} is empty: this device is not enrolled "
                "(run 'qatysu enroll --portal URL --token TOKEN')"
            )


class Daemon:
    def __init__(self, config: AgentConfig, *, clock: Clock | None = None) -> None:
        check_enrolled(config)
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.started_mono = time.monotonic()
        self.stop_event = threading.Event()
        self.inputs_stop = threading.Event()
        self.notifier = Notifier()
        self.watch = EventLog()
        self.health = ReaderHealth(r.name for r in config.readers)
        self.upload_state = UploadState()
        self.pin_factory: Any = None
        self.sensors: list[Sensor] = []
        self.feedback: Feedback | None = None
        self.reader_threads: list[ReaderThread] = []
        self.sensor_thread: SensorThread | None = None
        self.uploads: UploadLoop | None = None
        self.control: ControlServer | None = None
        self.store: RecordStore | None = None
        self.pump: EventPump | None = None
        self._client: Any = None

    # --- start ------------------------------------------------------------------

    def open(self) -> None:
        """Everything up to the first record: key, buffer, boot and config records."""
        config = self.config
        self.store = open_store(config, self.clock)
        try:
            self._record_start()
        except PermissionError as exc:  # a state-dir file root left behind
            self.store.close()
            raise permission_denied(exc, config.device.state_dir) from exc

    def _record_start(self) -> None:
        assert self.store is not None
        config = self.config
        # Where `qatysu export` has the daemon write a bundle it then copies
        # out (the service may not write to a USB stick: docs/decisions/0633).
        outbox(config).mkdir(exist_ok=True)
        digest = config_sha256(config)
        try:
            self.store.write("boot", boot_data(config, digest))
            previous = read_last_config_hash(config.device.state_dir)
            if previous and previous != digest:
                self.store.write("config", {"config_sha256": digest, "previous_sha256": previous})
                logger.info("config changed since the last run (%s...)", digest[:12])
            if previous != digest:
                remember_config_hash(config.device.state_dir, digest)
        except BufferFullError as exc:
            # Run anyway: uploading is what frees the space. The writer counts
            # the refusal and records a disk_full alarm once appends work again;
            # the config change is recorded at the next start.
            logger.error("boot record not stored: %s", exc)

    def start(self) -> None:
        assert self.store is not None
        config = self.config
        self.pin_factory = self._pin_factory()
        self.feedback = (
            Feedback(config.feedback, pin_factory=self.pin_factory)
            if (self.pin_factory is not None)
            else None
        )
        self.pump = EventPump(self.store, self.watch, self.health, self.feedback)
        if config.doors or config.tamper:
            self.sensors = build_sensors(
                config, pin_factory=self.pin_factory, on_change=self.pump.submit
            )
        readers = [create_reader(cfg) for cfg in config.readers]
        self.uploads = UploadLoop(
            self._make_uploader(),
            self.upload_state,
            delay_s=config.portal.upload_delay_ms / 1000,
            on_round=self._after_round,
        )
        self.store.add_listener(self.uploads.notify_new_record)
        self.control = ControlServer(config.device.control_socket, command_table(self))
        self.control.start()
        self.pump.start()
        for reader in readers:
            thread = ReaderThread(reader, self.pump.submit, self.inputs_stop)
            self.reader_threads.append(thread)
            thread.start()
        self.sensor_thread = SensorThread(self.sensors, self.inputs_stop)
        self.sensor_thread.start()
        self.uploads.start()

    def _pin_factory(self) -> Any:
        config = self.config
        needs = bool(config.doors or config.tamper) or any(
            pin is not None
            for pin in (
                config.feedback.green_pin,
                config.feedback.red_pin,
                config.feedback.buzzer_pin,
            )
        )
        try:
            factory = make_pin_factory()
        except HardwareError:
            if needs:
                raise
            logger.info("no GPIO here and none configured: running without pins")
            return None
        # One line naming the backend gpiozero settled on (its fallback warnings are
        # quieted): lgpio, RPi.GPIO, native or mock, as the technician would check.
        logger.info("GPIO through gpiozero's %s", type(factory).__name__)
        return factory

    def _make_uploader(self) -> Uploader:
        assert self.store is not None
        uploader, self._client = make_uploader(self.config, self.store, self.clock)
        return uploader

    def _after_round(self, result: UploadResult) -> None:
        if self.feedback is not None and self.store is not None and not self.store.closed:
            self.feedback.set_backlog(self.store.pending_count, offline=result.error is not None)

    # --- run --------------------------------------------------------------------

    def run(self) -> int:
        """Start, serve until SIGTERM or SIGINT, stop; returns the exit code."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.open()
            try:
                self.start()
                self.notifier.ready(self.status_text())
                logger.info(
                    "running as device %s, control socket %s",
                    self.config.portal.device_id,
                    self.config.device.control_socket,
                )
                self._loop()
            finally:
                self.shutdown()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        logger.info("signal %s: stopping", signal.Signals(signum).name)
        self.stop_event.set()

    def _loop(self) -> None:
        assert self.store is not None
        now = time.monotonic()
        heartbeat = Interval(float(self.config.heartbeat.interval_s), now)
        status = Interval(STATUS_EVERY_S, now)
        watchdog_s = self.notifier.watchdog_s
        tick = min(1.0, watchdog_s / 3) if watchdog_s else 1.0
        last_status = ""
        while not self.stop_event.wait(tick):
            now = time.monotonic()
            if heartbeat.due(now):
                self.write_heartbeat()
            if self.healthy():
                self.notifier.watchdog()
            if status.due(now):
                text = self.status_text()
                if text != last_status:
                    self.notifier.status(text)
                    last_status = text

    def write_heartbeat(self) -> None:
        assert self.store is not None
        try:
            self.store.write(
                "heartbeat",
                {
                    "pending": self.store.pending_count,
                    "readers": self.health.snapshot(),
                    "uptime_s": int(time.monotonic() - self.started_mono),
                },
            )
        except Exception as exc:
            logger.error("heartbeat not stored: %s", exc)

    def healthy(self) -> bool:
        """The writer works and every thread that should run does (the watchdog's test)."""
        if self.store is None or self.store.closed or self.pump is None:
            return False
        if not self.pump.healthy:
            return False
        if self.uploads is None or not self.uploads.alive:
            return False
        if self.sensor_thread is not None and not self.sensor_thread.alive:
            return False
        return all(t.alive for t in self.reader_threads)

    def status_text(self) -> str:
        pending = self.store.pending_count if self.store is not None else 0
        return status_line(pending, self.upload_state)

    # --- stop -------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop within STOP_DEADLINE_S; the record being written is finished first."""
        deadline = time.monotonic() + STOP_DEADLINE_S - 0.5
        self.notifier.stopping()
        self.inputs_stop.set()
        if self.uploads is not None:
            self.uploads.stop()
        if self.control is not None:
            self.control.close()
        for thread in self.reader_threads:
            thread.join(max(0.0, min(0.5, deadline - time.monotonic())))
        if self.sensor_thread is not None:
            self.sensor_thread.join(max(0.0, min(0.5, deadline - time.monotonic())))
        if self.pump is not None:
            self.pump.stop(max(0.1, deadline - time.monotonic() - 0.5))
        if self.store is not None:
            self.store.close()
        if self.feedback is not None:
            self.feedback.close()
        if self.pin_factory is not None:
            with contextlib.suppress(Exception):
                self.pin_factory.close()
        if self.uploads is not None:
            # A round in flight is abandoned: the next run's first round
            # resends whatever it had not seen acknowledged.
            self.uploads.thread.join(max(0.0, deadline - time.monotonic()))
            if not self.uploads.alive:
                with contextlib.suppress(Exception):
                    self.uploads.uploader.close()
                if self._client is not None:
                    with contextlib.suppress(Exception):
                        self._client.close()
        self.notifier.close()
        logger.info("stopped")
