"""Receipts: signed for a device's stored head and kept by hash (docs/protocol.md, Receipts).

Only an answer to signed content of the device (a record or gap whose
signature verifies) is kept, and only it moves the device's last-seen time:
kept receipts bracket trusted time (docs/reconciliation.md), and anyone can ask
for a cursor or post junk under a device's id.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, insert, select

from agent.protocol import build_receipt
from portal.db.schema import receipts
from portal.ingest.heads import load_device, refuse_revoked, touch

__all__ = ["answer_receipt", "cursor_receipt", "store_receipt"]


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


def answer_receipt(
    conn: Connection,
    key: Ed25519PrivateKey,
    device_id: str,
    seq: int,
    record_hash: str,
    now: int,
    *,
    signed: bool,
) -> dict[str, Any]:
    """The receipt an upload answers with; kept, and the device seen, only if ``signed``."""
    if not signed:
        return build_receipt(key, device=device_id, seq=seq, record_hash=record_hash, server_ms=now)
    touch(conn, device_id, now)
    return store_receipt(conn, key, device_id, seq, record_hash, now)


def cursor_receipt(
    engine: Engine, key: Ed25519PrivateKey, device_id: str, now: int
) -> dict[str, Any]:
    """A fresh receipt for the device's current head (``GET .../cursor``), not kept.

    The request is unauthenticated: it neither keeps a receipt nor marks the device seen.
    """
    with engine.connect() as conn:
        head = load_device(conn, device_id)
    refuse_revoked(head)
    return build_receipt(
        key, device=device_id, seq=head.head_seq, record_hash=head.head_hash, server_ms=now
    )
