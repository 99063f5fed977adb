"""Declared holes: a signed ``gap`` record, alone or bridged by a batch (docs/protocol.md)."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, insert, select

from agent.protocol import ZERO_HASH, ChainVerifier, DeclaredGap, Failure, parse_gap_data
from portal.db.engine import write_transaction
from portal.db.schema import declared_gaps, integrity_events
from portal.ingest.evidence import keep_evidence
from portal.ingest.heads import DeviceHead, load_device, refuse_revoked, set_head
from portal.ingest.outcome import IngestOutcome
from portal.ingest.receipts import answer_receipt
from portal.ingest.storage import stored_hash

__all__ = ["declare_gap", "gap_record", "record_gap"]


def declare_gap(
    engine: Engine, key: Ed25519PrivateKey, device_id: str, record: object, *, now: int
) -> IngestOutcome:
    """Record a hole declared by a signed ``gap`` record (docs/protocol.md)."""
    with engine.connect() as conn:
        device = load_device(conn, device_id)
    refuse_revoked(device)
    failure = ChainVerifier(device.public_key, device_id).check_content(record)
    signed = failure is None  # the device's own signature: it was heard from
    gap: DeclaredGap | None = None
    if failure is None:
        assert isinstance(record, dict)
        if record["type"] != "gap":
            failure = Failure(record["seq"], "encoding", "a gap declaration needs a 'gap' record")
        else:
            parsed = parse_gap_data(record)
            if isinstance(parsed, str):
                failure = Failure(record["seq"], "encoding", parsed)
            else:
                gap = parsed
    with write_transaction(engine) as conn:
        head = load_device(conn, device_id, lock=True)
        if gap is not None:
            assert isinstance(record, dict)
            failure = _gap_problem(conn, head, gap, record)
        if failure is None and gap is not None:
            assert isinstance(record, dict)
            record_gap(conn, device_id, gap, record, now)
            if gap.last_seq > head.head_seq:
                set_head(conn, device_id, gap.last_seq, gap.resume_prev)
                head = load_device(conn, device_id)
        receipt = answer_receipt(
            conn, key, device_id, head.head_seq, head.head_hash, now, signed=signed
        )
        if failure is not None:
            keep_evidence(conn, head, [record], failure, now)
            return IngestOutcome(422, receipt, failure=failure)
        return IngestOutcome(200, receipt)


def gap_record(good: list[dict[str, Any]], gap: DeclaredGap) -> dict[str, Any]:
    """The record among ``good`` that declared ``gap``."""
    return next(r for r in good if r["type"] == "gap" and r["seq"] == gap.declared_at)


def record_gap(
    conn: Connection, device_id: str, gap: DeclaredGap, record: dict[str, Any], now: int
) -> bool:
    """Keep a declared hole and its integrity event once; False if already known."""
    known = conn.execute(
        select(declared_gaps.c.first_seq).where(
            declared_gaps.c.device_id == device_id,
            declared_gaps.c.gap_record_hash == record["hash"],
        )
    ).first()
    if known is not None:
        return False
    conn.execute(
        insert(declared_gaps).values(
            device_id=device_id,
            first_seq=gap.first_seq,
            last_seq=gap.last_seq,
            last_hash=gap.last_hash,
            gap_record_hash=record["hash"],
            gap_record_seq=record["seq"],
            reason=gap.reason,
            record=record,
            declared_ms=now,
        )
    )
    conn.execute(
        insert(integrity_events).values(
            device_id=device_id,
            kind="gap",
            first_seq=gap.first_seq,
            last_seq=gap.last_seq,
            reason="declared",
            detail=f"device declared seq {gap.first_seq}..{gap.last_seq} lost: {gap.reason}",
            at_ms=now,
        )
    )
    return True


def _gap_problem(
    conn: Connection, head: DeviceHead, gap: DeclaredGap, record: dict[str, Any]
) -> Failure | None:
    seq = record["seq"]
    known = conn.execute(
        select(declared_gaps.c.first_seq).where(
            declared_gaps.c.device_id == head.device_id,
            declared_gaps.c.gap_record_hash == record["hash"],
        )
    ).first()
    if known is not None:
        return None  # the same declaration again: the same answer
    if seq <= head.head_seq:
        stored = stored_hash(conn, head.device_id, seq)
        if stored == record["hash"]:
            return None  # already stored in order
        if stored is not None:
            return Failure(seq, "fork", "the portal holds another record at this seq")
    expected = head.head_seq + 1
    if not gap.bridges(expected):
        return Failure(
            seq,
            "gap",
            f"declared range {gap.first_seq}..{gap.last_seq} does not contain expected seq "
            f"{expected}",
        )
    if gap.last_seq == head.head_seq and gap.last_hash not in ("", head.head_hash):
        return Failure(seq, "link", "last_hash differs from the stored record at last_seq")
    if gap.last_seq == head.head_seq and gap.last_hash == "" and head.head_hash != ZERO_HASH:
        return Failure(seq, "link", "the portal holds record last_seq: last_hash must be given")
    return None
