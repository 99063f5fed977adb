"""Put a synthetic city into a portal database: through the real ingest, or in bulk.

:class:`IngestUplink` is the honest path: centers are registered, devices
enrolled with single-use tokens, every batch goes through
:func:`portal.ingest.batch.ingest_batch` (signatures, chain, receipts, ``covered_ms``)
and every hole through :func:`portal.ingest.gaps.declare_gap`, at the simulated time.

:func:`bulk_load` is the benchmark's shortcut for millions of records: the city
is generated against :class:`~portal.synthetic.generator.LocalPortal` and its
records, receipts and declared holes are inserted directly, the records through
the ingest's own :func:`portal.ingest.storage.insert_records`. It checks nothing;
the benchmark runs a sample through :class:`IngestUplink` to show that both
paths store the same thing.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, insert, select

from agent.protocol import ZERO_HASH, public_key_b64
from agent.protocol.ntag424 import KIND
from portal.cards.registry import ACTIVE, DIVERSIFIED
from portal.db.engine import write_transaction
from portal.db.schema import (
    cards,
    centers,
    device_addresses,
    devices,
    integrity_events,
    receipts,
)
from portal.exceptions import PortalError
from portal.ingest.batch import ingest_batch
from portal.ingest.gaps import declare_gap
from portal.ingest.storage import insert_records, record_row
from portal.reconcile.store import apply_import
from portal.registry import add_center, create_enroll_token, enroll_device
from portal.synthetic.generator import (
    City,
    Device,
    ImportStep,
    LocalPortal,
    district_of,
    upload_runs,
)

logger = logging.getLogger(__name__)


class IngestUplink:
    """Devices of a generated city uploading through the portal's own ingest."""

    def __init__(self, engine: Engine, key: Ed25519PrivateKey, *, now: int) -> None:
        self.engine = engine
        self.key = key
        self.now = now
        self.centers: set[str] = set()

    def enroll(self, center_id: str, key: Ed25519PrivateKey) -> str:
        if center_id not in self.centers:
            with self.engine.connect() as conn:
                held = conn.execute(
                    select(centers.c.center_id).where(centers.c.center_id == center_id)
                ).first()
            if held is None:
                add_center(
                    self.engine,
                    center_id,
                    f"Центр {center_id}",
                    now=self.now,
                    district=district_of(center_id),
                )
            self.centers.add(center_id)
        token = create_enroll_token(self.engine, center_id, 3_600_000, now=self.now)
        return enroll_device(
            self.engine, token, public_key_b64(key), "0.1.0", {"model": "synthetic"}, now=self.now
        ).device_id

    def upload(
        self, device: Device, batch: list[dict[str, Any]], now_ms: int, address: str = ""
    ) -> str:
        outcome = None
        for i in range(0, max(len(batch), 1), 5000):
            outcome = ingest_batch(
                self.engine,
                self.key,
                device.device_id,
                batch[i : i + 5000],
                now=now_ms,
                client=address or None,
            )
            if outcome.status != 200:
                raise PortalError(
                    f"ingest refused a generated batch of {device.device_id}: {outcome.body()}"
                )
        assert outcome is not None
        return str(outcome.receipt["hash"])

    def declare_gap(self, device: Device, record: dict[str, Any], now_ms: int) -> str:
        outcome = declare_gap(self.engine, self.key, device.device_id, record, now=now_ms)
        if outcome.status != 200:
            raise PortalError(f"gap declaration refused for {device.device_id}: {outcome.body()}")
        return str(outcome.receipt["hash"])


def register_sun_cards(engine: Engine, city: City, now: int) -> int:
    """Register the city's SUN cards as the office's station would have left them.

    Active, keys derived from the card master (nothing stored), activated at counter 0:
    every synthetic read's counter is above it. Returns how many were registered.
    """
    if city.sun is None or not city.sun.uids:
        return 0
    rows = [
        {
            "uid": uid,
            "kind": KIND,
            "state": ACTIVE,
            "key_source": DIVERSIFIED,
            "activated_counter": 0,
            "created_ms": now,
            "activated_ms": now,
        }
        for uid in sorted(city.sun.uids)
    ]
    with write_transaction(engine) as conn:
        conn.execute(insert(cards), rows)
    return len(rows)


def apply_plan(engine: Engine, plan: Iterable[ImportStep]) -> int:
    """Import the city's files in order, each at its simulated time; returns rows read.

    A step with ``allow_long`` passes ``allow_long=True`` when the import takes it
    (lessons longer than the portal's maximum are refused otherwise).
    """
    takes_long = "allow_long" in inspect.signature(apply_import).parameters
    rows = 0
    for n, step in enumerate(plan):
        extra: dict[str, Any] = {"allow_long": True} if step.allow_long and takes_long else {}
        outcome = apply_import(
            engine,
            step.kind,
            step.data,
            f"{n:03d}-{step.note}-{step.kind}.csv",
            now=step.imported_ms,
            **extra,
        )
        rows += outcome.rows
    return rows


def _rows(device: Device, covered: dict[int, int]) -> Iterable[tuple[Any, ...]]:
    for r in device.records:
        at = covered[r["seq"]]
        yield record_row(
            device.device_id, r, received_ms=at, covered_ms=at, sig_checked=bool(r["sig"])
        )


def bulk_load(
    engine: Engine, city: City, portal: LocalPortal, *, now: int, chunk: int = 20_000
) -> int:
    """Insert the city's centers, devices, records, receipts and holes; returns records."""
    count = 0
    with write_transaction(engine) as conn:
        have = {r[0] for r in conn.execute(select(centers.c.center_id))}
        new = [
            {"center_id": c, "name": f"Центр {c}", "created_ms": now, "district": district_of(c)}
            for c in city.centers
            if c not in have
        ]
        if new:
            conn.execute(insert(centers), new)
        for d in city.devices:
            last = d.records[-1] if d.records else None
            conn.execute(
                insert(devices).values(
                    device_id=d.device_id,
                    center_id=d.center_id,
                    public_key=public_key_b64(d.key),
                    agent_version="0.1.0",
                    hardware={"model": "synthetic"},
                    enrolled_ms=now,
                    last_seen_ms=portal.covered[d.device_id].get(last["seq"]) if last else None,
                    head_seq=last["seq"] if last else 0,
                    head_hash=last["hash"] if last else ZERO_HASH,
                )
            )
        receipt_rows = [
            {
                "hash": h,
                "device_id": r["device"],
                "seq": r["seq"],
                "record_hash": r["record_hash"],
                "server_ms": r["server_ms"],
                "body": r,
            }
            for h, r in portal.receipts.items()
        ]
        for i in range(0, len(receipt_rows), chunk):
            conn.execute(insert(receipts), receipt_rows[i : i + chunk])
        if portal.events:
            conn.execute(
                insert(integrity_events),
                [
                    {
                        "device_id": e.device_id,
                        "kind": e.kind,
                        "first_seq": e.first_seq,
                        "last_seq": e.last_seq,
                        "reason": "declared",
                        "detail": e.reason,
                        "at_ms": e.at_ms,
                    }
                    for e in portal.events
                ],
            )
        # The addresses the ingest notes for signed uploads, as its runs per device.
        address_rows = []
        for d in city.devices:
            uploads = portal.addresses[d.device_id]
            for lo, hi, address in upload_runs(uploads):
                n = sum(1 for at, a, _, _ in uploads if a == address and lo <= at <= hi)
                address_rows.append(
                    {
                        "device_id": d.device_id,
                        "address": address,
                        "first_ms": lo,
                        "last_ms": hi,
                        "uploads": n,
                    }
                )
        for i in range(0, len(address_rows), chunk):
            conn.execute(insert(device_addresses), address_rows[i : i + chunk])
    for d in city.devices:
        rows = list(_rows(d, portal.covered[d.device_id]))
        for i in range(0, len(rows), chunk):
            with engine.begin() as conn:
                insert_records(conn, rows[i : i + chunk])
        count += len(rows)
    return count
