"""The reader contract. A driver module holds one :class:`Reader` subclass.

Descendants *must* override :meth:`Reader.run`. They *may* override
:meth:`Reader.probe` (a quick "is the hardware there", used by ``qatysu
doctor`` and ``qatysu test reader``) and :meth:`Reader.close`.

``run`` is the reader's whole life: it blocks in its own thread, calls
``emit`` for each :class:`~agent.events.BadgeRead` (one per presentation of a
card) and each :class:`~agent.events.ReaderStatus` (fault and recovery), and
returns soon after ``stop`` is set. It never raises for hardware trouble: it
reports a fault, waits, and tries again. Foreign exceptions (spidev, GPIO,
``serial.SerialException``) are translated at this boundary.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable

from agent.events import BadgeRead, ReaderStatus

Emit = Callable[[BadgeRead | ReaderStatus], None]


class Reader(ABC):
    driver: str = ""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def run(self, emit: Emit, stop: threading.Event) -> None:
        """Read until ``stop`` is set; see the module docstring."""

    def probe(self) -> str:
        """One line on what answered (e.g. ``MFRC522 VersionReg 0x92``); raises ReaderError."""
        return f"{self.driver} reader {self.name}: no probe for this driver"

    def close(self) -> None:  # noqa: B027 - optional hook, deliberately a no-op
        """Release the bus or port."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
