"""Bundles from a USB stick (``qatysu export``) through the same ingest as HTTP."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select

from portal.db.schema import devices
from portal.exceptions import MalformedRequest, UnknownDeviceError
from portal.ingest import IngestOutcome, ingest_batch

__all__ = ["BundleResult", "ingest_bundle"]


@dataclass(frozen=True)
class BundleResult:
    device_id: str
    records: int
    accepted: int
    duplicates: int
    last: IngestOutcome  # the final answer, with the receipt to hand back


def ingest_bundle(
    engine: Engine,
    key: Ed25519PrivateKey,
    bundle: Any,
    *,
    now: int,
    chunk: int = 5000,
    signatures: str = "all",
    pool: Executor | None = None,
) -> BundleResult:
    """Ingest a parsed bundle in chunks; stops at the first chunk that is not fully stored."""
    if not isinstance(bundle, dict) or set(bundle) != {"v", "device", "public_key", "records"}:
        raise MalformedRequest("a bundle holds exactly v, device, public_key and records")
    device_id, batch = bundle["device"], bundle["records"]
    if bundle["v"] != 1 or not isinstance(device_id, str) or not isinstance(batch, list):
        raise MalformedRequest("bundle v must be 1, device a string and records a list")
    with engine.connect() as conn:
        stored_key = conn.execute(
            select(devices.c.public_key).where(devices.c.device_id == device_id)
        ).scalar()
    if stored_key is None:
        raise UnknownDeviceError(f"bundle device {device_id!r} is not enrolled")
    if bundle["public_key"] != stored_key:
        raise MalformedRequest(
            f"bundle public_key differs from the key enrolled for device {device_id!r}"
        )
    accepted = duplicates = 0
    parts = [batch[i : i + chunk] for i in range(0, len(batch), chunk)] or [[]]
    outcome: IngestOutcome | None = None
    for part in parts:
        outcome = ingest_batch(
            engine, key, device_id, part, now=now, signatures=signatures, pool=pool
        )
        accepted += outcome.accepted
        duplicates += outcome.duplicates
        if outcome.status != 200:
            break
    assert outcome is not None
    return BundleResult(device_id, len(batch), accepted, duplicates, outcome)
