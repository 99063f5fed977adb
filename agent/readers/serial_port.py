"""The thin I/O shell shared by the serial drivers (``rdm6300``, ``serial-line``).

It opens ``port`` through its port opener, by default
:func:`serial.serial_for_url` (so ``loop://`` and ``spy://...`` work as well
as ``/dev/ttyUSB0``), hands every byte it reads to a sans-I/O framer
(:mod:`agent.readers.framing`), and turns cards into
:class:`~agent.hardware.events.BadgeRead`, one per presentation
(:class:`~agent.readers.presence.PresenceTracker`). A port that disappears
(USB unplugged, UART gone) becomes one ``fault``; the shell retries opening it
with exponential backoff and says ``recovered`` once the port has stayed open
for ``settle_s`` or delivered data. pyserial's exceptions (``SerialException``
is an ``OSError``) never leave this module: they are translated to
:class:`~agent.exceptions.ReaderError` here, at the boundary. pyserial itself
is imported only when the default opener runs.

:class:`SerialConfig` holds the keys both drivers share, and what a port asks
of the board: the dialout group for a device path, and the GPIO 14/15 UART
(its boot-config line, its two header pins) for ``serial0``/``ttyAMA0``/``ttyS0``.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from agent.backoff import Backoff
from agent.clock import Clock, SystemClock
from agent.exceptions import ReaderError
from agent.hardware.events import BadgeRead, ReaderStatus
from agent.readers.base import BootLine, Device, Emit, Problem, Reader, ReaderConfig, Requirements
from agent.readers.framing import Card, Rejected
from agent.readers.presence import PresenceTracker

__all__ = [
    "Framer",
    "PortOpener",
    "SerialConfig",
    "SerialPortReader",
    "is_network_port",
    "open_port",
    "port_scheme",
    "serial_for_url",
    "serial_port_is_path",
]

logger = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.2  # how often the loop looks at ``stop`` while the line is idle
UART_NAMES = ("serial0", "ttyAMA0", "ttyS0")  # the GPIO 14/15 UART under its names
_UART_PINS = {14: "UART TXD", 15: "UART RXD"}
_UART_BOOT = BootLine("the GPIO 14/15 UART", ("enable_uart=1", "dtparam=uart0=on", "dtparam=uart0"))


class Framer(Protocol):
    def feed(self, data: bytes) -> list[Card | Rejected]: ...


PortOpener = Callable[..., Any]


def serial_for_url(url: str, **kwargs: Any) -> Any:
    """The real opener: :func:`serial.serial_for_url`, pyserial imported on first use."""
    import serial

    return serial.serial_for_url(url, **kwargs)


def serial_port_is_path(port: str) -> bool:
    """A device path (checked on disk) rather than a pyserial URL such as ``loop://``."""
    return "://" not in port


# pyserial URL schemes that reach no network: loop:// echoes what is written,
# hwgrep:// picks a local port by its description, spy:// and alt:// wrap
# another port (judged by what they wrap).
_LOCAL_SCHEMES = frozenset({"loop", "hwgrep"})
_WRAPPING_SCHEMES = frozenset({"spy", "alt"})


def port_scheme(port: str) -> str:
    """``path`` for a device path, else the URL's scheme (``socket``, ``loop``...)."""
    if "://" not in port:
        return "path"
    return port.split("://", 1)[0].lower()


def is_network_port(port: str) -> bool:
    """Whether ``port`` may read from the network (socket://, rfc2217://, ...).

    A serial reader fed over TCP accepts taps from anywhere: the club could
    type them from a laptop. Unknown schemes count as network.
    """
    scheme = port_scheme(port)
    if scheme == "path" or scheme in _LOCAL_SCHEMES:
        return False
    if scheme in _WRAPPING_SCHEMES:
        inner = port.split("://", 1)[1].split("?", 1)[0]
        return is_network_port(inner)
    return True


def open_port(url: str, baudrate: int, opener: PortOpener = serial_for_url) -> Any:
    """Open ``url`` (a device path or a pyserial URL); raises :class:`ReaderError`."""
    if not url:
        raise ReaderError("no port configured")
    try:
        # exclusive: a second process on the same port (a stray agent, a
        # terminal left open) would steal bytes and split frames between them.
        return opener(url, baudrate=baudrate, timeout=READ_TIMEOUT_S, exclusive=True)
    except (OSError, ValueError) as exc:  # serial.SerialException is an OSError
        raise ReaderError(f"port {url}: {exc}") from exc


@dataclass(frozen=True)
class SerialConfig(ReaderConfig):
    """The keys of a serial reader's ``[[readers]]`` entry."""

    port: str = field(
        default="",  # a device path or a pyserial URL (loop://, spy://...)
        metadata={"comment": "serial device, or a pyserial URL such as loop://"},
    )
    baudrate: int = field(default=9600, metadata={"comment": "serial speed"})
    allow_network_port: bool = field(
        default=False,
        metadata={"comment": "accept a network URL (socket://, rfc2217://) as port"},
    )


SerialConfigT = TypeVar("SerialConfigT", bound=SerialConfig)


class SerialPortReader(Reader[SerialConfigT]):
    """Descendants set ``driver`` and ``config_class`` and *must* override :meth:`make_framer`."""

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
        opener: PortOpener = serial_for_url,
        allow_network_port: bool = False,
    ) -> None:
        super().__init__(name)
        self.port = port
        self.allow_network_port = allow_network_port
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

    @classmethod
    def requirements(cls, config: SerialConfigT) -> Requirements:
        port = config.port
        on_uart = port.split("/")[-1] in UART_NAMES
        devices: tuple[Device, ...] = ()
        if port and serial_port_is_path(port):
            fix = "plug the reader in, or enable the UART in the boot config"
            devices = (Device(port, "dialout", "port", fix=fix, hotplug=True),)
        return Requirements(
            bus_pins=_UART_PINS if on_uart else {},
            devices=devices,
            boot_config=(_UART_BOOT,) if on_uart else (),
            exclusive=(("port", port),) if port else (),
        )

    @classmethod
    def check(cls, config: SerialConfigT) -> list[Problem]:
        problems = []
        if not config.port:
            problems.append(Problem("error", "port", f"driver {cls.driver} needs a serial port"))
        if config.baudrate <= 0:
            problems.append(Problem("error", "baudrate", "must be above 0"))
        if is_network_port(config.port) and not config.allow_network_port:
            problems.append(
                Problem(
                    "error",
                    "port",
                    f"{config.port!r} reads from the network; the reader refuses it "
                    "unless allow_network_port = true",
                )
            )
        return problems

    @abstractmethod
    def make_framer(self) -> Framer:
        """A fresh framer; a new one is made each time the port is (re)opened."""

    def _open(self) -> Any:
        if is_network_port(self.port) and not self.allow_network_port:
            raise ReaderError(
                f"port {self.port}: a network port is refused (allow_network_port = true allows it)"
            )
        return open_port(self.port, self.baudrate, self.opener)

    def probe(self) -> str:
        port = self._open()
        port.close()
        return f"{self.driver} reader {self.name}: port {self.port} opens at {self.baudrate} baud"

    def close(self) -> None:
        with self._lock:
            port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except OSError:
                logger.debug("reader %s: error closing %s", self.name, self.port, exc_info=True)

    def run(self, emit: Emit, stop: threading.Event) -> None:
        self._faulted = False
        while not stop.is_set():
            try:
                port = self._open()
            except ReaderError as exc:
                self._fault(emit, exc)
                stop.wait(self.backoff.failure())
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
                stop.wait(self.backoff.failure())

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
        presence = PresenceTracker.for_repeats(self.away_s)
        opened_at = time.monotonic()
        stable = False
        while not stop.is_set():
            data = self._read(port)
            if not stable and (data or time.monotonic() - opened_at >= self.settle_s):
                # The port works: data arrived, or it stayed open a while.
                stable = True
                self.backoff.success()
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
        except OSError as exc:  # serial.SerialException is an OSError
            raise ReaderError(f"port {self.port}: {exc}") from exc
