"""Bundles from a USB stick (``qatysu export``) through the same ingest as HTTP."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select

from agent.protocol import DeclaredGap, parse_gap_data
from portal.db.schema import devices
from portal.exceptions import MalformedRequest, UnknownDeviceError
from portal.ingest.batch import ingest_batch
from portal.ingest.gaps import declare_gap
from portal.ingest.heads import load_device
from portal.ingest.outcome import IngestOutcome

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
    resumes = _declarations(batch)
    outcome: IngestOutcome | None = None
    for part in _runs(batch, chunk):
        first = _seq(part[0]) if part else None
        declared = resumes.get(first) if first is not None else None
        if declared is not None and _hole_at_head(engine, device_id, declared[1]):
            # As a device does over HTTP: the hole's declaration first, alone. It may
            # sit a week of backlog later in the bundle, in another chunk.
            outcome = declare_gap(engine, key, device_id, declared[0], now=now)
            if outcome.status != 200:
                break
        outcome = ingest_batch(
            engine, key, device_id, part, now=now, signatures=signatures, pool=pool
        )
        accepted += outcome.accepted
        duplicates += outcome.duplicates
        if outcome.status != 200:
            break
    assert outcome is not None
    return BundleResult(device_id, len(batch), accepted, duplicates, outcome)


def _seq(record: object) -> int | None:
    seq = record.get("seq") if isinstance(record, dict) else None
    return seq if type(seq) is int else None


def _runs(batch: list[Any], chunk: int) -> list[list[Any]]:
    """Runs of consecutive seqs, each cut to at most ``chunk`` records.

    A record without a usable seq stays in its run: the ingest refuses it there.
    """
    parts: list[list[Any]] = []
    current: list[Any] = []
    previous: int | None = None
    for record in batch:
        seq = _seq(record)
        jump = seq is not None and previous is not None and seq != previous + 1
        if current and (len(current) == chunk or jump):
            parts.append(current)
            current = []
        current.append(record)
        previous = seq if seq is not None else previous
    if current or not parts:
        parts.append(current)
    return parts


def _declarations(batch: list[Any]) -> dict[int, tuple[dict[str, Any], DeclaredGap]]:
    """The bundle's ``gap`` records by the seq each hole resumes at (unverified here)."""
    out: dict[int, tuple[dict[str, Any], DeclaredGap]] = {}
    for record in batch:
        if (
            isinstance(record, dict)
            and record.get("type") == "gap"
            and isinstance(record.get("data"), dict)
        ):
            parsed = parse_gap_data(record)
            if isinstance(parsed, DeclaredGap):
                out.setdefault(parsed.last_seq + 1, (record, parsed))
    return out


def _hole_at_head(engine: Engine, device_id: str, gap: DeclaredGap) -> bool:
    """True when the portal's next expected seq lies inside the declared hole."""
    with engine.connect() as conn:
        head = load_device(conn, device_id)
    return head.head_seq + 1 <= gap.last_seq and gap.bridges(head.head_seq + 1)
