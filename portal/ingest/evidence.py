"""Evidence of refused records: each kept, an integrity event when the device signed it."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence

from sqlalchemy import Connection, insert

from agent.protocol import Failure
from portal.db.schema import integrity_events, rejected_records
from portal.ingest.abuse import log_abuse
from portal.ingest.heads import DeviceHead
from portal.ingest.signatures import signed_by

__all__ = ["keep_evidence"]

logger = logging.getLogger(__name__)

# JSON text may escape a lone surrogate ("\ud800"); no database stores one raw.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def keep_evidence(
    conn: Connection, head: DeviceHead, refused: Sequence[object], failure: Failure, now: int
) -> None:
    """Keep every refused record; taint the device only if it signed the first one."""
    signed = [signed_by(r, head.public_key) for r in refused]
    conn.execute(
        insert(rejected_records),
        [
            {
                "device_id": head.device_id,
                "seq": _seq_of(r),
                "reason": failure.reason if i == 0 else "after_rejected",
                "detail": failure.detail if i == 0 else f"follows refused seq {failure.seq}",
                "body": _evidence_text(r),
                "received_ms": now,
                "signed_by_device": signed[i],
            }
            for i, r in enumerate(refused)
        ],
    )
    if signed and signed[0]:
        conn.execute(
            insert(integrity_events).values(
                device_id=head.device_id,
                kind="fork" if failure.reason == "fork" else "rejected",
                first_seq=failure.seq,
                last_seq=_seq_of(refused[-1]),
                reason=failure.reason,
                detail=failure.detail,
                at_ms=now,
            )
        )
        logger.warning("device %s: signed record refused: %s", head.device_id, failure)
    else:
        log_abuse(conn, head.device_id, failure.reason, f"unsigned or foreign: {failure}", now)


def _evidence_text(record: object) -> str:
    """The record as JSON text; a lone surrogate kept as the escape it arrived as."""
    text = json.dumps(record, sort_keys=True, ensure_ascii=False, default=repr)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _seq_of(record: object) -> int | None:
    if isinstance(record, dict):
        seq = record.get("seq")
        if type(seq) is int:
            return seq
    return None
