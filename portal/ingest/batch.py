"""One uploaded batch through ingest: content phase, then sequence phase and storage.

:func:`ingest_batch` puts the jobs of :mod:`portal.ingest` together: the content
phase (:mod:`~portal.ingest.content`, no database, before any lock), then in one
write transaction holding the device row the sequence phase
(:mod:`~portal.ingest.sequence`), the insert of the valid prefix
(:mod:`~portal.ingest.storage`), the bridged holes (:mod:`~portal.ingest.gaps`),
the new head, a signed receipt (:mod:`~portal.ingest.receipts`) and the evidence
of what was refused (:mod:`~portal.ingest.evidence`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from agent.protocol import seal_digest, signature_valid
from portal.db.engine import write_transaction
from portal.ingest.addresses import note_address
from portal.ingest.content import CheckedContent, check_content
from portal.ingest.evidence import keep_evidence
from portal.ingest.gaps import gap_record, record_gap
from portal.ingest.heads import DeviceHead, load_device, refuse_revoked, set_head
from portal.ingest.outcome import IngestOutcome
from portal.ingest.receipts import answer_receipt
from portal.ingest.sequence import held_range, sequence
from portal.ingest.storage import held_hashes, insert_records

__all__ = ["ingest_batch"]


def ingest_batch(
    engine: Engine,
    key: Ed25519PrivateKey,
    device_id: str,
    batch: Sequence[object],
    *,
    now: int,
    signatures: str = "all",
    pool: Executor | None = None,
    client: str | None = None,
) -> IngestOutcome:
    """Verify ``batch`` against the stored head of ``device_id`` and store its valid prefix.

    ``client`` is the network address the batch came from, noted for a signed
    upload (:mod:`~portal.ingest.addresses`). Raises :class:`UnknownDeviceError`
    or :class:`RevokedDeviceError`; every other problem is an
    :class:`IngestOutcome` (409 or 422) with a receipt.
    """
    with engine.connect() as conn:
        device = load_device(conn, device_id)
    refuse_revoked(device)
    tail_only = signatures == "tail"
    content = check_content(batch, device_id, device.public_key, not tail_only, pool, now)
    outcome = _store(engine, key, device, batch, content, now, client)
    if tail_only and outcome is None:
        # A tail signature failed to cover the stored prefix: check every one.
        content = check_content(batch, device_id, device.public_key, True, pool, now)
        outcome = _store(engine, key, device, batch, content, now, client)
    assert outcome is not None
    return outcome


def _store(
    engine: Engine,
    key: Ed25519PrivateKey,
    device: DeviceHead,
    batch: Sequence[object],
    content: CheckedContent,
    now: int,
    client: str | None,
) -> IngestOutcome | None:
    """The sequence phase in one transaction; None asks the caller to check every signature."""
    good: list[dict[str, Any]] = [r for r in batch[: len(content.data)]]  # type: ignore[misc]
    with write_transaction(engine) as conn:
        head = load_device(conn, device.device_id, lock=True)
        refuse_revoked(head)
        held = held_hashes(conn, head.device_id, held_range(head, good))
        done = sequence(head, good, held, content.failure)
        accepted, failure = done.accepted, done.failure
        if accepted and not content.sig_checked[accepted[-1]]:
            # Tail mode: the stored prefix ends before the signature that covered it.
            tail = good[accepted[-1]]
            data, _ = seal_digest(tail, checked=True)
            if not signature_valid(data, tail["sig"], head.public_key):
                conn.rollback()
                return None
            content.sig_checked[accepted[-1]] = True
        # Only a verified signature of the device marks it seen and keeps the receipt.
        signed = any(content.sig_checked)
        if signed:
            note_address(conn, head.device_id, client, now)
        if failure is not None and failure.reason == "gap" and done.failed_at == 0:
            receipt = answer_receipt(
                conn, key, head.device_id, head.head_seq, head.head_hash, now, signed=signed
            )
            return IngestOutcome(409, receipt, expected_seq=head.head_seq + 1, failure=failure)
        rows, flags = content.rows, content.sig_checked
        insert_records(conn, [(*rows[i], flags[i]) for i in accepted])
        for gap in done.bridged:
            record_gap(conn, head.device_id, gap, gap_record(good, gap), now)
        set_head(conn, head.device_id, done.head_seq, done.head_hash)
        receipt = answer_receipt(
            conn, key, head.device_id, done.head_seq, done.head_hash, now, signed=signed
        )
        outcome = IngestOutcome(
            200 if failure is None else 422,
            receipt,
            accepted=len(accepted),
            duplicates=done.duplicates,
            failure=failure,
            stored_seqs=[good[i]["seq"] for i in accepted],
        )
        if failure is not None:
            keep_evidence(conn, head, batch[done.failed_at :], failure, now)
        return outcome
