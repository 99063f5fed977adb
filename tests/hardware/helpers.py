"""The world the hardware tests fake: ptys, reader threads, short socket paths."""

from __future__ import annotations

import os
import queue
import threading
import tty
from types import TracebackType
from typing import Any

from agent.readers.base import Reader

WAIT_S = 5.0


class Pty:
    """A real pseudo-terminal; the reader opens ``name`` (or a symlink to it) with pyserial."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line editing before pyserial configures it
        self.name = os.ttyname(self.slave)
        self.closed = False

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view) :]

    def close(self) -> None:
        """Hang up: the reader's next read fails, like a USB adapter pulled out."""
        if not self.closed:
            self.closed = True
            os.close(self.master)
            os.close(self.slave)


class Running:
    """A reader's ``run`` in its own thread, its events on a queue."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.events: queue.Queue[Any] = queue.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=reader.run, args=(self.events.put, self.stop), daemon=True
        )

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop.set()
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "reader did not stop"

    def next(self, timeout: float = WAIT_S) -> Any:
        return self.events.get(timeout=timeout)

    def wait_for(self, predicate: Any, timeout: float = WAIT_S) -> list[Any]:
        """Events up to and including the first one ``predicate`` accepts."""
        seen: list[Any] = []
        while True:
            event = self.events.get(timeout=timeout)
            seen.append(event)
            if predicate(event):
                return seen
