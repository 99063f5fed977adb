"""Live events for ``qatysu test`` while the daemon owns the hardware.

A bounded ring of events, each numbered by a cursor; a client long-polls
with the last cursor it saw (0 = only what happens from now on). A client
that falls behind by more than the ring holds misses the oldest events and
sees ``missed`` in the answer.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

__all__ = ["EventLog"]


class EventLog:
    def __init__(self, size: int = 1000, max_batch: int = 200) -> None:
        self._events: collections.deque[tuple[int, dict[str, Any]]] = collections.deque(maxlen=size)
        # Positions start at 1, so 0 only ever means "from now" (a client
        # that got cursor 0 back would otherwise skip what happened next).
        self._cursor = 1
        self._max_batch = max_batch
        self._changed = threading.Condition()

    @property
    def cursor(self) -> int:
        with self._changed:
            return self._cursor

    def publish(self, event: dict[str, Any]) -> None:
        with self._changed:
            self._cursor += 1
            self._events.append((self._cursor, event))
            self._changed.notify_all()

    def wait(self, after: int, wait_ms: int) -> dict[str, Any]:
        """Events after cursor ``after`` (0: from now), waiting up to ``wait_ms`` for one."""
        deadline = time.monotonic() + max(0, wait_ms) / 1000
        with self._changed:
            if after <= 0 or after > self._cursor:
                after = self._cursor  # from now (a cursor from a previous run also means now)
            while self._cursor == after:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            fresh = [(n, e) for n, e in self._events if n > after][: self._max_batch]
            missed = bool(fresh) and fresh[0][0] > after + 1
            cursor = fresh[-1][0] if fresh else after
            answer: dict[str, Any] = {"cursor": cursor, "events": [e for _, e in fresh]}
            if missed:
                answer["missed"] = True
            return answer
