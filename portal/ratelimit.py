"""Request rate limit: a token bucket per key with an injected clock.

:class:`RateLimiter` keeps the buckets in the process; :class:`SharedRateLimiter`
keeps them in PostgreSQL for ``serve --workers N`` (docs/portal.md, Settings).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine

from portal.db.schema import rate_buckets

__all__ = ["Limiter", "RateLimiter", "SharedRateLimiter"]


class Limiter(Protocol):
    def take(self, key: str) -> float | None: ...


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """``rate`` requests per second sustained, ``burst`` at once, per key."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """None if a request may go ahead now, else seconds until one may."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) > 100_000:  # bound memory against junk ids
                    self._buckets.clear()
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / self.rate


class SharedRateLimiter:
    """The same buckets kept in the database, for several portal processes (PostgreSQL).

    One upsert per request refills and takes a token atomically (the row lock of
    ``ON CONFLICT DO UPDATE``), so N processes together allow the configured rate,
    not N times it. The clock is the wall clock: every process reads the same one.
    """

    def __init__(self, engine: Engine, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self._engine = engine
        self._clock = clock

    def take(self, key: str) -> float | None:
        """None if a request may go ahead now, else seconds until one may."""
        from sqlalchemy import case, func
        from sqlalchemy.dialects.postgresql import insert

        now = self._clock()
        old = rate_buckets.c
        refilled = func.least(float(self.burst), old.tokens + (now - old.at_s) * self.rate)
        fresh = insert(rate_buckets).values(
            key=key[:200], tokens=float(self.burst) - 1.0, at_s=now, granted=True
        )
        upsert = fresh.on_conflict_do_update(
            index_elements=[old.key],
            set_={
                "tokens": case((refilled >= 1.0, refilled - 1.0), else_=refilled),
                "at_s": func.greatest(old.at_s, now),
                "granted": refilled >= 1.0,
            },
        ).returning(rate_buckets.c.tokens, rate_buckets.c.granted)
        with self._engine.begin() as conn:
            tokens, granted = conn.execute(upsert).one()
        if granted:
            return None
        return (1.0 - float(tokens)) / self.rate
