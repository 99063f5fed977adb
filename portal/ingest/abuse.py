"""The abuse log: requests refused as malformed, oversized, unsigned or foreign."""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, insert, select

from portal.db.schema import abuse_log, devices

__all__ = ["log_abuse", "record_abuse"]

logger = logging.getLogger(__name__)


def log_abuse(
    conn: Connection,
    device_id: str | None,
    kind: str,
    detail: str,
    now: int,
    client: str | None = None,
) -> None:
    """One line of the abuse log, in the caller's transaction."""
    conn.execute(
        insert(abuse_log).values(
            device_id=device_id, kind=kind, detail=detail[:2000], client=client, at_ms=now
        )
    )
    logger.info("abuse for device %s from %s: %s", device_id, client, detail)


def record_abuse(
    engine: Engine, device_id: str, kind: str, detail: str, *, client: str | None, now: int
) -> None:
    """Log a refused request (malformed, too large) against an enrolled device's id.

    Requests naming unknown ids go to the server log only, so that random ids
    cannot fill the table.
    """
    with engine.begin() as conn:
        known = conn.execute(
            select(devices.c.device_id).where(devices.c.device_id == device_id)
        ).first()
        if known is None:
            logger.info(
                "refused request for unknown device %r from %s: %s", device_id, client, detail
            )
            return
        log_abuse(conn, device_id, kind, detail, now, client)
