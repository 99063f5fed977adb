"""Receipts: signed for a device's stored head and kept by hash (docs/protocol.md, Receipts)."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, insert, select

from agent.protocol import build_receipt
from portal.db.engine import write_transaction
from portal.db.schema import receipts
from portal.ingest.heads import load_device, refuse_revoked, touch

__all__ = ["cursor_receipt", "store_receipt"]


def store_receipt(
    conn: Connection, key: Ed25519PrivateKey, device_id: str, seq: int, record_hash: str, now: int
) -> dict[str, Any]:
    """Sign a receipt for ``(seq, record_hash)`` and keep it by hash (device row held)."""
    receipt = build_receipt(key, device=device_id, seq=seq, record_hash=record_hash, server_ms=now)
    # The same head in the same millisecond signs to the same bytes (Ed25519 is
    # deterministic): keep it once. Callers hold the device row, so no race here.
    known = select(receipts.c.hash).where(receipts.c.hash == receipt["hash"])
    if conn.execute(known).first() is not None:
        return receipt
    conn.execute(
        insert(receipts).values(
            hash=receipt["hash"],
            device_id=device_id,
            seq=seq,
            record_hash=record_hash,
            server_ms=now,
            body=receipt,
        )
    )
    return receipt


def cursor_receipt(
    engine: Engine, key: Ed25519PrivateKey, device_id: str, now: int
) -> dict[str, Any]:
    """A fresh receipt for the device's current head (``GET .../cursor``)."""
    with write_transaction(engine) as conn:
        head = load_device(conn, device_id, lock=True)
        refuse_revoked(head)
        touch(conn, device_id, now)
        return store_receipt(conn, key, device_id, head.head_seq, head.head_hash, now)
