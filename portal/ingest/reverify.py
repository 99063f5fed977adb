"""Re-verify stored chains from seq 1, signatures included (``qatysu-portal verify``).

Records stored with only their batch's tail signature checked are marked
``sig_checked`` here once their own signature verifies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update

from agent.protocol import ZERO_HASH, ChainVerifier, DeclaredGap, Failure, public_key_from_b64
from portal.db.schema import declared_gaps, devices, integrity_events, records
from portal.exceptions import UnknownDeviceError

__all__ = ["ChainVerdict", "check_unchecked_signatures", "verify_stored"]

logger = logging.getLogger(__name__)

_PAGE = 5000


@dataclass(frozen=True)
class ChainVerdict:
    device_id: str
    records: int
    gaps: int
    newly_checked: int
    failure: Failure | None
    head_matches: bool
    head_seq: int = 0  # the device's stored head
    chain_end: int = 0  # where replaying the stored records ended

    @property
    def ok(self) -> bool:
        return self.failure is None and self.head_matches


def verify_stored(engine: Engine, device_id: str | None = None, *, now: int) -> list[ChainVerdict]:
    """Verify each device's stored chain (or one device's); one verdict per device."""
    with engine.connect() as conn:
        query = select(devices.c.device_id).order_by(devices.c.device_id)
        if device_id is not None:
            query = query.where(devices.c.device_id == device_id)
        ids = list(conn.execute(query).scalars())
    if device_id is not None and not ids:
        raise UnknownDeviceError(f"device {device_id!r} is not enrolled")
    return [_verify_one(engine, each, now) for each in ids]


def _verify_one(engine: Engine, device_id: str, now: int) -> ChainVerdict:
    with engine.connect() as conn:
        dev = conn.execute(select(devices).where(devices.c.device_id == device_id)).one()
        gaps = [
            DeclaredGap(r.first_seq, r.last_seq, r.last_hash, r.reason, r.gap_record_seq)
            for r in conn.execute(
                select(declared_gaps).where(declared_gaps.c.device_id == device_id)
            )
        ]
    verifier = ChainVerifier(public_key_from_b64(dev.public_key), device_id, 0, ZERO_HASH, gaps)
    count = 0
    newly: list[int] = []
    failure: Failure | None = None
    after = 0
    while failure is None:
        with engine.connect() as conn:
            page = conn.execute(
                select(records.c.seq, records.c.body, records.c.sig_checked)
                .where(records.c.device_id == device_id, records.c.seq > after)
                .order_by(records.c.seq)
                .limit(_PAGE)
            ).all()
        if not page:
            break
        for row in page:
            failure = verifier.feed(row.body)
            if failure is not None:
                break
            count += 1
            if not row.sig_checked:
                newly.append(int(row.seq))
        after = int(page[-1].seq)
    # The stored head may sit past the last record: the end of a declared hole.
    head_matches = failure is not None or (
        (verifier.last_seq, verifier.last_hash) == (dev.head_seq, dev.head_hash)
        or any(g.last_seq == dev.head_seq and g.resume_prev == dev.head_hash for g in gaps)
    )
    with engine.begin() as conn:
        for start in range(0, len(newly), 500):
            conn.execute(
                update(records)
                .where(
                    records.c.device_id == device_id, records.c.seq.in_(newly[start : start + 500])
                )
                .values(sig_checked=True)
            )
        broken: tuple[int | None, int | None, str, str] | None = None
        if failure is not None:
            detail = f"verify found the stored chain broken: {failure.detail}"
            broken = (failure.seq, None, failure.reason, detail)
        elif not head_matches:
            # Records deleted from the end, or the head edited: receipts were signed for it.
            detail = (
                f"verify found the stored head at seq {dev.head_seq} but the stored chain "
                f"ends at seq {verifier.last_seq}"
            )
            low, high = sorted((dev.head_seq, verifier.last_seq))
            broken = (low + 1, high, "head", detail)
        if broken is not None:
            first_seq, last_seq, reason, detail = broken
            conn.execute(
                insert(integrity_events).values(
                    device_id=device_id,
                    kind="stored_chain",
                    first_seq=first_seq,
                    last_seq=last_seq,
                    reason=reason,
                    detail=detail,
                    at_ms=now,
                )
            )
            logger.error("device %s: %s", device_id, detail)
    return ChainVerdict(
        device_id,
        count,
        len(gaps),
        len(newly),
        failure,
        head_matches,
        head_seq=dev.head_seq,
        chain_end=verifier.last_seq,
    )


def check_unchecked_signatures(engine: Engine, *, now: int, limit: int = 2000) -> tuple[int, int]:
    """Check up to ``limit`` signatures stored unchecked (tail mode); (checked, bad).

    A bad one cannot be un-stored (its hash is covered by a later valid
    signature, so its content is authentic), but it is an integrity event.
    """
    with engine.connect() as conn:
        rows = conn.execute(
            select(records.c.device_id, records.c.seq, records.c.body, devices.c.public_key)
            .join(devices, devices.c.device_id == records.c.device_id)
            .where(records.c.sig_checked.is_(False))
            .limit(limit)
        ).all()
    if not rows:
        return 0, 0
    keys: dict[str, Any] = {}
    good: list[tuple[str, int]] = []
    bad: list[tuple[str, int]] = []
    for row in rows:
        key = keys.get(row.public_key) or keys.setdefault(
            row.public_key, public_key_from_b64(row.public_key)
        )
        verifier = ChainVerifier(key, row.device_id)
        (good if verifier.check_content(row.body) is None else bad).append(
            (row.device_id, int(row.seq))
        )
    with engine.begin() as conn:
        for device_id, seq in good + bad:
            conn.execute(
                update(records)
                .where(records.c.device_id == device_id, records.c.seq == seq)
                .values(sig_checked=True)
            )
        for device_id, seq in bad:
            conn.execute(
                insert(integrity_events).values(
                    device_id=device_id,
                    kind="signature_late",
                    first_seq=seq,
                    last_seq=seq,
                    reason="signature",
                    detail="stored in tail mode; its own signature does not verify",
                    at_ms=now,
                )
            )
    return len(rows), len(bad)
