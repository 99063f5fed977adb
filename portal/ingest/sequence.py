"""The sequence phase: each checked record against the device's stored head.

No SQL: the caller holds the device row and passes the hashes stored at the
batch's seqs. Duplicates are skipped, a held seq with another hash is a
``fork``, holes are bridged only where the batch's own signed ``gap`` records
declare them (:meth:`agent.protocol.ChainVerifier.check_sequence`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.protocol import ChainVerifier, DeclaredGap, Failure, collect_declared_gaps
from portal.ingest.heads import DeviceHead

__all__ = ["Sequenced", "held_range", "sequence"]


@dataclass
class Sequenced:
    """What the sequence phase accepts of a batch, and where it stops."""

    accepted: list[int]  # indexes into the batch, in order
    duplicates: int
    failure: Failure | None  # the sequence failure, else the content phase's
    failed_at: int  # index of the first refused record (len(good) when none is)
    bridged: list[DeclaredGap]  # holes jumped by the accepted records
    head_seq: int  # the head after the accepted records
    head_hash: str


def held_range(head: DeviceHead, good: list[dict[str, Any]]) -> list[int]:
    """The batch's seqs at or below the stored head: those whose stored hash is needed."""
    return [r["seq"] for r in good if r["seq"] <= head.head_seq]


def sequence(
    head: DeviceHead,
    good: list[dict[str, Any]],
    held: dict[int, str],
    content_failure: Failure | None,
) -> Sequenced:
    """Run the content-checked records ``good`` against ``head``; ``held`` seq -> stored hash.

    ``held`` is updated with the accepted records. ``content_failure`` is the
    content phase's failure just after ``good``, reported when the sequence
    finds nothing earlier.
    """
    gaps = collect_declared_gaps(good, head.public_key, head.device_id)
    verifier = ChainVerifier(
        head.public_key, head.device_id, head.head_seq, head.head_hash, gaps, signatures=False
    )
    accepted = _linked_prefix(good, verifier)
    if len(accepted) < len(good):
        held.update((good[i]["seq"], good[i]["hash"]) for i in accepted)
    bridged: list[DeclaredGap] = []
    duplicates = 0
    failure: Failure | None = None
    failed_at = len(good)
    for index in range(len(accepted), len(good)):
        record = good[index]
        seq = record["seq"]
        if seq <= verifier.last_seq:
            known = held.get(seq)
            if known == record["hash"]:
                duplicates += 1
                continue
            failure = (
                Failure(seq, "regression", f"expected seq {verifier.next_seq}")
                if known is None
                else Failure(seq, "fork", "the portal holds another record at this seq")
            )
            failed_at = index
            break
        before = verifier.next_seq
        failure = verifier.check_sequence(record)
        if failure is not None:
            failed_at = index
            break
        if seq > before:
            bridged.append(next(g for g in gaps if g.last_seq + 1 == seq))
        verifier.last_seq, verifier.last_hash = seq, record["hash"]
        held[seq] = record["hash"]
        accepted.append(index)
    if failure is None:
        failure = content_failure
        failed_at = len(good)
    return Sequenced(
        accepted, duplicates, failure, failed_at, bridged, verifier.last_seq, verifier.last_hash
    )


def _linked_prefix(good: list[dict[str, Any]], verifier: ChainVerifier) -> list[int]:
    """Accept the leading records that are each the next seq and link to the one before.

    The common case, in a tight loop: for such a record
    ``ChainVerifier.check_sequence`` finds nothing and bridges nothing.
    """
    seq, prev = verifier.next_seq, verifier.last_hash
    count = 0
    for record in good:
        if record["seq"] != seq or record["prev"] != prev:
            break
        seq, prev = seq + 1, record["hash"]
        count += 1
    if count:
        verifier.last_seq, verifier.last_hash = seq - 1, prev
    return list(range(count))
