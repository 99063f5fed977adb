"""Exponential backoff, the one used by every retry loop (readers, supervisors, uploads).

Pure: nothing here sleeps or reads a clock. A caller counts a failure and gets
the delay to wait (its own ``stop.wait`` or deadline arithmetic against its
own clock), and counts a success to start over. The delay doubles from
``initial_s`` up to ``max_s``; with ``rand`` it is drawn uniformly from
``[0, that bound)`` ("full jitter"), so many devices that lost the portal at
the same moment do not all come back at the same moment.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    def __init__(
        self, initial_s: float, max_s: float, rand: Callable[[], float] | None = None
    ) -> None:
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError(f"backoff needs 0 < initial ({initial_s}) <= max ({max_s})")
        self.initial_s = initial_s
        self.max_s = max_s
        self.rand = rand
        self.failures = 0

    def ceiling(self) -> float:
        """The upper bound of the next delay (the delay itself without jitter)."""
        exponent = min(self.failures, 62)  # 2**62 * anything is past any cap
        return min(self.max_s, self.initial_s * 2.0**exponent)

    def failure(self) -> float:
        """Count a failure; the delay before the next attempt."""
        ceiling = self.ceiling()
        delay = ceiling if self.rand is None else self.rand() * ceiling
        self.failures += 1
        return delay

    def success(self) -> None:
        """The thing works again: the next failure waits ``initial_s`` (its bound) again."""
        self.failures = 0
