"""Contact debouncing as pure code: raw levels and times in, settled states out.

A reed switch or tamper microswitch chatters for a few milliseconds when it
moves. A new level counts only once it has been stable for ``debounce_s``
of the caller's clock; shorter excursions are ignored, however many. No
pins and no threads here (a sans-I/O core), so tests drive it with a hand-moved
clock; gpiozero's ``bounce_time`` is not used (MockFactory ignores it, and
it drops edges rather than waiting for the level to settle).
"""

from __future__ import annotations

__all__ = ["Debouncer"]


class Debouncer:
    def __init__(self, debounce_s: float, initial: bool) -> None:
        self.debounce_s = debounce_s
        self.settled = initial
        self._candidate = initial
        self._since = 0.0

    def observe(self, level: bool, now: float) -> bool | None:
        """Feed the level seen at ``now``; returns the new settled level when it changes."""
        if level != self._candidate:
            self._candidate = level
            self._since = now
        if self._candidate != self.settled and now - self._since >= self.debounce_s:
            self.settled = self._candidate
            return self.settled
        return None

    def deadline(self) -> float | None:
        """When a pending level would settle if it holds; None when nothing is pending."""
        if self._candidate == self.settled:
            return None
        return self._since + self.debounce_s
