"""A fake serial line for the serial drivers' port opener: bytes in, unplug, replug.

:meth:`FakeSerialLine.open` has the shape of :func:`serial.serial_for_url` (the
drivers' ``opener`` argument). The port it returns reads what :meth:`send`
wrote, with pyserial's timeout semantics (``read`` waits up to ``timeout``
for the first byte), and fails like pyserial when the line is unplugged:
opening raises and reading an open port raises, both ``OSError`` as
``serial.SerialException`` is. The real pyserial over a pty is
tests/readers/test_serial_pty.py's.
"""

from __future__ import annotations

import threading
from typing import Any


class FakePort:
    def __init__(self, line: FakeSerialLine, timeout: float | None) -> None:
        self.line = line
        self.timeout = timeout
        self.is_open = True

    @property
    def in_waiting(self) -> int:
        with self.line.cond:
            return len(self.line.buffer)

    def read(self, size: int = 1) -> bytes:
        line = self.line
        with line.cond:
            line.cond.wait_for(
                lambda: line.buffer or line.unplugged or not self.is_open, self.timeout
            )
            if not self.is_open:
                raise OSError(9, "Attempting to use a port that is not open")
            if line.unplugged:
                raise OSError(5, "device reports readiness to read but returned no data")
            data = bytes(line.buffer[:size])
            del line.buffer[:size]
            return data

    def close(self) -> None:
        with self.line.cond:
            self.is_open = False
            self.line.cond.notify_all()


class FakeSerialLine:
    """One serial device: the reader's opener opens it, the test sends bytes to it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.cond = threading.Condition()
        self.buffer = bytearray()
        self.unplugged = False
        self.ports: list[FakePort] = []

    def open(self, url: str, **kwargs: Any) -> FakePort:
        if url != self.path or self.unplugged:
            raise OSError(2, f"could not open port {url}: No such file or directory")
        port = FakePort(self, kwargs.get("timeout"))
        self.ports.append(port)
        return port

    def send(self, data: bytes) -> None:
        with self.cond:
            self.buffer += data
            self.cond.notify_all()

    def unplug(self) -> None:
        with self.cond:
            self.unplugged = True
            self.buffer.clear()
            self.cond.notify_all()

    def replug(self) -> None:
        with self.cond:
            self.unplugged = False

    @property
    def open_ports(self) -> list[FakePort]:
        return [p for p in self.ports if p.is_open]
