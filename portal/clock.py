"""The portal's clock, injected so tests and imports can fix time."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "monotonic_s", "now_ms"]

Clock = Callable[[], int]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def monotonic_s() -> float:
    return time.monotonic()
