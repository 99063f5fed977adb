"""The portal's long-lived parts in one object: settings, engine, key, clock, pools."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from agent.protocol import public_key_b64
from portal.clock import monotonic_s, now_ms
from portal.db import create_engine_for, upgrade_to_head
from portal.exceptions import UnknownDeviceError
from portal.ingest.heads import load_device
from portal.ingest.signatures import signed_by
from portal.keys import load_or_create_key
from portal.ratelimit import Limiter, RateLimiter, SharedRateLimiter
from portal.settings import Settings

__all__ = ["Portal", "open_portal"]

logger = logging.getLogger(__name__)


def wall_s() -> float:
    return now_ms() / 1000


@dataclass
class Portal:
    settings: Settings
    engine: Engine
    key: Ed25519PrivateKey
    clock: Callable[[], int] = now_ms
    limiter: Limiter | None = None
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="verify")
    )

    @property
    def public_key(self) -> str:
        return public_key_b64(self.key)

    def rate_key(self, device_id: str, client: str | None, record: object = None) -> str:
        """Whose rate bucket a device request is charged to.

        The device's own, only when ``record`` (the first of a batch, or a gap
        declaration) verifies under the device's key: one Ed25519 check, cheap next to
        the ingest it guards. Anything else (junk, a stranger's batch, the unsigned
        cursor) is charged to the client's address, so junk sent to a device id cannot
        starve that device's real uploads.
        """
        if record is not None:
            try:
                with self.engine.connect() as conn:
                    key = load_device(conn, device_id).public_key
            except (UnknownDeviceError, ValueError):
                key = None
            if key is not None and signed_by(record, key):
                return f"device:{device_id}"
        return f"client:{client or '?'}"

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        self.engine.dispose()


def open_portal(
    settings: Settings,
    *,
    clock: Callable[[], int] = now_ms,
    monotonic: Callable[[], float] = monotonic_s,
    migrate: bool = True,
    shared_limits: bool = False,
) -> Portal:
    """Open the store (migrating it to the newest schema) and load or create the key.

    ``shared_limits`` keeps the rate buckets in the database (PostgreSQL), for one
    of several processes serving the same store.
    """
    # Children's names and badge UIDs live here: private from the start.
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    engine = create_engine_for(settings)
    if migrate:
        upgrade_to_head(engine)
    key = load_or_create_key(settings.data_dir)
    limiter: Limiter
    if shared_limits:
        limiter = SharedRateLimiter(engine, settings.rate_per_s, settings.rate_burst, wall_s)
    else:
        limiter = RateLimiter(settings.rate_per_s, settings.rate_burst, monotonic)
    return Portal(
        settings,
        engine,
        key,
        clock,
        limiter,
        ThreadPoolExecutor(settings.verify_threads, thread_name_prefix="verify"),
    )
