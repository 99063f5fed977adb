"""The thin I/O shell shared by the serial drivers (``rdm6300``, ``serial-line``).

It opens ``port`` through :func:`serial.serial_for_url` (so ``loop://`` and
``spy://...`` work as well as ``/dev/ttyUSB0``), hands every byte it reads
to a sans-I/O framer (:mod:`agent.readers.framing`), and turns cards into
:class:`~agent.events.BadgeRead`, one per presentation. A port that
disappears (USB unplugged, UART gone) becomes one ``fault``; the shell
retries opening it with exponential backoff and says ``recovered`` once the
port has stayed open for ``settle_s`` or delivered data.
``serial.SerialException`` never leaves this module: it is translated to
:class:`~agent.exceptions.ReaderError` here, at the boundary.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

import serial

from agent.clock import Clock, SystemClock
from agent.events import BadgeRead, ReaderStatus
from agent.exceptions import ReaderError
from agent.readers.base import Emit, Reader
from agent.readers.framing import Card, PresenceFilter, Rejected

__all__ = ["Backoff", "Framer", "SerialPortReader", "open_port"]

logger = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.2  # how often the loop looks at ``stop`` while the line is idle


class Framer(Protocol):
    def feed(self, data: bytes) -> list[Card | Rejected]: ...


PortOpener = Callable[..., Any]


class Backoff:
    """Delays for successive retries: initial, doubled each time, capped (sans-I/O)."""

    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._next = initial_s

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self._next = self.initial_s


def open_port(url: str, baudrate: int, opener: PortOpener = serial.serial_for_url) -> Any:
    """Open ``url`` (a device path or a pyserial URL); raises :class:`ReaderError`."""
    if not url:
        raise ReaderError("no port configured")
    try:
        # exclusive: a second process on the same port (a stray agent, a
        # terminal left open) would steal bytes and split frames between them.
        return opener(url, baudrate=baudrate, timeout=READ_TIMEOUT_S, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise ReaderError(f"port {url}: {exc}") from exc


class SerialPortReader(Reader):
    """Descendants set ``driver`` and *must* override :meth:`make_framer`."""

    def __init__(
        self,
        name: str,
        port: str,
        *,
        baudrate: int = 9600,
        clock: Clock | None = None,
        away_s: float = 0.5,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        settle_s: float = 1.0,
        opener: PortOpener = serial.serial_for_url,
    ) -> None:
        super().__init__(name)
        self.port = port
        self.baudrate = baudrate
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.away_s = away_s
        self.backoff = Backoff(retry_initial_s, retry_max_s)
        # A reopened port counts as recovered once it has stayed open this long
        # (or delivered data): a flapping adapter is one fault, not hundreds.
        # Real time, like the backoff waits: this is the I/O shell.
        self.settle_s = settle_s
        self._faulted = False
        self.opener = opener
        # Set while the port is open and being read; for tests and `qatysu test reader`.
        self.port_open = threading.Event()
        self._lock = threading.Lock()
        self._serial: Any = None

    @abstractmethod
    def make_framer(self) -> Framer:
        """A fresh framer; a new one is made each time the port is (re)opened."""

    def probe(self) -> str:
        port = open_port(self.port, self.baudrate, self.opener)
        port.close()
        return f"{self.driver} reader {self.name}: port {self.port} opens at {self.baudrate} baud"

    def close(self) -> None:
        with self._lock:
            port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                logger.debug("reader %s: error closing %s", self.name, self.port, exc_info=True)

    def run(self, emit: Emit, stop: threading.Event) -> None:
        self._faulted = False
        while not stop.is_set():
            try:
                port = open_port(self.port, self.baudrate, self.opener)
            except ReaderError as exc:
                self._fault(emit, exc)
                stop.wait(self.backoff.next_delay())
                continue
            with self._lock:
                self._serial = port
            self.port_open.set()
            try:
                self._read_until_failure(port, emit, stop)
            except ReaderError as exc:
                failure: ReaderError | None = exc
            else:
                failure = None  # stopped
            finally:
                self.port_open.clear()
                self.close()
            if failure is not None:
                self._fault(emit, failure)
                stop.wait(self.backoff.next_delay())

    def _fault(self, emit: Emit, exc: ReaderError) -> None:
        # One fault per outage: a port that keeps failing while it is down
        # (or flaps open-and-fail) is still the same outage.
        if self._faulted:
            logger.debug("reader %s: still failing: %s", self.name, exc)
            return
        self._faulted = True
        emit(ReaderStatus(self.name, "fault", str(exc)))
        logger.warning("reader %s: %s", self.name, exc)

    def _read_until_failure(self, port: Any, emit: Emit, stop: threading.Event) -> None:
        framer = self.make_framer()
        presence = PresenceFilter(self.away_s)
        opened_at = time.monotonic()
        stable = False
        while not stop.is_set():
            data = self._read(port)
            if not stable and (data or time.monotonic() - opened_at >= self.settle_s):
                # The port works: data arrived, or it stayed open a while.
                stable = True
                self.backoff.reset()
                if self._faulted:
                    self._faulted = False
                    emit(ReaderStatus(self.name, "recovered", f"port {self.port} open"))
                    logger.info("reader %s: port %s works again", self.name, self.port)
            if not data:
                continue
            try:
                results = framer.feed(data)
            except Exception:  # a framer bug must not end the reader's life
                logger.exception("reader %s: framer failed; starting a fresh one", self.name)
                framer = self.make_framer()
                continue
            for result in results:
                if isinstance(result, Rejected):
                    logger.debug("reader %s: %s: %r", self.name, result.reason, result.raw)
                elif presence.new_presentation(result.uid, self.clock.monotonic()):
                    emit(BadgeRead(self.name, self.driver, result.uid, result.uid_len))

    def _read(self, port: Any) -> bytes:
        try:
            data: bytes = port.read(1)
            if data:
                waiting = port.in_waiting
                if waiting:
                    data += port.read(waiting)
            return data
        except (serial.SerialException, OSError) as exc:
            raise ReaderError(f"port {self.port}: {exc}") from exc
