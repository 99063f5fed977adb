"""The device row as ingest sees it: its key, its stored head, revoked or not."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, select, update

from agent.protocol import public_key_from_b64
from portal.db.schema import devices
from portal.exceptions import RevokedDeviceError, UnknownDeviceError

__all__ = ["DeviceHead", "load_device", "refuse_revoked", "set_head", "touch"]


@dataclass(frozen=True)
class DeviceHead:
    device_id: str
    public_key: Ed25519PublicKey
    head_seq: int
    head_hash: str
    revoked: bool


def load_device(conn: Connection, device_id: str, *, lock: bool = False) -> DeviceHead:
    """The device row; ``lock`` holds it (FOR UPDATE) until the transaction ends."""
    query = select(
        devices.c.public_key, devices.c.head_seq, devices.c.head_hash, devices.c.revoked_ms
    ).where(devices.c.device_id == device_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise UnknownDeviceError(f"device {device_id!r} is not enrolled")
    return DeviceHead(
        device_id,
        public_key_from_b64(row.public_key),
        int(row.head_seq),
        row.head_hash,
        row.revoked_ms is not None,
    )


def refuse_revoked(head: DeviceHead) -> None:
    """Raise :class:`RevokedDeviceError` for a device an operator revoked."""
    if head.revoked:
        raise RevokedDeviceError(f"device {head.device_id!r} is revoked")


def touch(conn: Connection, device_id: str, now: int) -> None:
    """The device was heard from at ``now``."""
    conn.execute(update(devices).where(devices.c.device_id == device_id).values(last_seen_ms=now))


def set_head(
    conn: Connection, device_id: str, seq: int, record_hash: str, *, seen: int | None = None
) -> None:
    """Make ``(seq, record_hash)`` the stored head; ``seen`` also sets ``last_seen_ms``."""
    values: dict[str, object] = {"head_seq": seq, "head_hash": record_hash}
    if seen is not None:
        values["last_seen_ms"] = seen
    conn.execute(update(devices).where(devices.c.device_id == device_id).values(**values))
