"""The reader-driver contract: one module per driver, like gpiozero's pin factories.

A driver module holds a frozen dataclass subclassing :class:`ReaderConfig`
(the ``[[readers]]`` keys of that driver: only those load, an unknown one is
a one-line error naming the nearest valid key) and one :class:`Reader`
subclass, listed by name in :data:`agent.readers.registry.DRIVERS`. Nothing
else names a driver: ``config validate``, ``doctor``, ``init``'s template and
``config set`` ask the registry.

A :class:`Reader` subclass *must*:

* set ``driver`` (its name in config and in records) and ``config_class``;
* override :meth:`Reader.from_config`: build the reader from its config, and
  pass ``**inject`` on to the constructor. The constructor takes its bus as
  an argument (MFRC522: a register-bus opener; serial readers: a port
  opener; simulated: a socket path) with the real one as the default, so
  tests plug emulators in through ``inject`` and the registry;
* override :meth:`Reader.run`: the reader's whole life. It blocks in its own
  thread, calls ``emit`` with a :class:`~agent.hardware.events.BadgeRead` for
  each presentation of a card (:class:`~agent.readers.presence.PresenceTracker`)
  and a :class:`~agent.hardware.events.ReaderStatus` for each fault and
  recovery, and returns soon after ``stop`` is set. It never raises for
  hardware trouble: it reports a fault, waits (:class:`~agent.backoff.Backoff`)
  and tries again. Foreign exceptions (spidev, GPIO, ``serial``) are
  translated to :class:`~agent.exceptions.ReaderError` at that boundary.

It *may* override:

* :meth:`Reader.requirements`: what the config needs of the board (pins it
  drives, header pins its bus occupies, device nodes and their groups,
  boot-config lines, resources no other reader may share); ``doctor`` and
  ``config validate`` check these;
* :meth:`Reader.check`: values that make no sense for this driver;
* :meth:`Reader.probe`: a quick "is the hardware there" (``qatysu doctor``,
  ``qatysu test reader``); raises ReaderError;
* :meth:`Reader.close`: release the bus or port.

Every registered driver runs the contract test (tests/readers/
test_driver_contract.py) with its fake; docs/hardware.md says how to add one.
Importing a driver module loads no I/O library: the real bus is imported
when it is opened.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

from agent.clock import Clock
from agent.hardware.events import BadgeRead, ReaderStatus

__all__ = [
    "BootLine",
    "Device",
    "Emit",
    "Problem",
    "Reader",
    "ReaderConfig",
    "Requirements",
]

Emit = Callable[[BadgeRead | ReaderStatus], None]


@dataclass(frozen=True)
class ReaderConfig:
    """The keys every ``[[readers]]`` entry has; a driver's subclass adds its own.

    A subclass fixes ``driver`` (``field(default=NAME, init=False)``) and may
    describe each key with ``metadata={"comment": ...}`` for the file
    ``qatysu init`` writes.
    """

    name: str = field(metadata={"comment": "name in records and on the portal"})
    driver: str  # a name in agent.readers.registry.DRIVERS


@dataclass(frozen=True)
class Device:
    """A device node a reader opens."""

    path: str  # on the device, e.g. /dev/spidev0.0
    group: str  # the Unix group that grants read and write
    key: str  # the config key that names it, e.g. "port"
    fix: str = "check the wiring and the boot config"  # what to do when it is missing
    hotplug: bool = False  # comes and goes with the reader (USB): validate warns if absent


@dataclass(frozen=True)
class BootLine:
    """A need of the boot config: any one of ``accepted`` satisfies it."""

    why: str  # e.g. "SPI0 for the MFRC522"
    accepted: tuple[str, ...]


@dataclass(frozen=True)
class Requirements:
    """What one configured reader needs of the board."""

    pins: tuple[tuple[str, int], ...] = ()  # (config key, BCM pin) it drives
    bus_pins: Mapping[int, str] = field(default_factory=dict)  # header pin -> bus line
    devices: tuple[Device, ...] = ()
    boot_config: tuple[BootLine, ...] = ()
    exclusive: tuple[tuple[str, str], ...] = ()  # (config key, resource) no reader shares

    @property
    def groups(self) -> tuple[str, ...]:
        """The Unix groups the agent's user needs: the devices', and gpio for pins."""
        groups = [d.group for d in self.devices] + (["gpio"] if self.pins else [])
        return tuple(dict.fromkeys(groups))


@dataclass(frozen=True)
class Problem:
    """A finding of :meth:`Reader.check` about one key of the entry."""

    level: Literal["error", "warning"]
    key: str  # the entry's key at fault, e.g. "spi_bus"
    message: str


ConfigT = TypeVar("ConfigT", bound=ReaderConfig)


class Reader(ABC, Generic[ConfigT]):
    driver: ClassVar[str] = ""
    config_class: type[ReaderConfig] = ReaderConfig

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    @abstractmethod
    def from_config(cls, config: ConfigT, *, clock: Clock | None = None, **inject: Any) -> Self:
        """The reader ``config`` describes; ``inject`` goes to the constructor (bus, sleep...)."""

    @classmethod
    def requirements(cls, config: ConfigT) -> Requirements:
        """What ``config`` needs of the board; nothing by default."""
        return Requirements()

    @classmethod
    def check(cls, config: ConfigT) -> list[Problem]:
        """Values of ``config`` that make no sense for this driver; none by default."""
        return []

    @abstractmethod
    def run(self, emit: Emit, stop: threading.Event) -> None:
        """Read until ``stop`` is set; see the module docstring."""

    def probe(self) -> str:
        """One line on what answered (e.g. ``MFRC522 VersionReg 0x92``); raises ReaderError."""
        return f"{self.driver} reader {self.name}: no probe for this driver"

    def close(self) -> None:
        """Release the bus or port."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
