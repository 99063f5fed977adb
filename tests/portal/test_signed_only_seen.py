"""Last-seen times and kept receipts come only from the device's signed content."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from agent.protocol import verify_receipt
from portal.db.schema import devices, receipts
from portal.state import Portal
from tests.portal.support import SimDevice


def _seen_and_kept(portal: Portal, device_id: str) -> tuple[int | None, int]:
    with portal.engine.connect() as conn:
        seen = conn.execute(
            select(devices.c.last_seen_ms).where(devices.c.device_id == device_id)
        ).scalar_one()
        kept = conn.execute(
            select(func.count()).select_from(receipts).where(receipts.c.device_id == device_id)
        ).scalar_one()
    return seen, int(kept)


def test_junk_neither_marks_the_device_seen_nor_keeps_receipts(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    base = f"/api/v1/devices/{device.device_id}"
    before = _seen_and_kept(portal, device.device_id)
    cursor = client.get(f"{base}/cursor")
    assert cursor.status_code == 200
    verify_receipt(cursor.json()["receipt"], portal.key.public_key())  # still a signed answer
    forged = SimDevice(device_id=device.device_id)  # another key
    assert client.post(f"{base}/gaps", json={"record": {"junk": 1}}).status_code == 422
    assert client.post(f"{base}/gaps", json={"record": forged.gap(1, 2, "")}).status_code == 422
    assert client.post(f"{base}/records", json={"records": [{"junk": 1}]}).status_code == 422
    assert client.post(f"{base}/records", json={"records": forged.batch(2)}).status_code == 422
    assert client.post(f"{base}/records", json={"records": []}).status_code == 200
    assert _seen_and_kept(portal, device.device_id) == before


def test_signed_uploads_and_gaps_mark_the_device_seen_and_keep_receipts(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    base = f"/api/v1/devices/{device.device_id}"
    assert client.post(f"{base}/records", json={"records": device.batch(2)}).status_code == 200
    seen, kept = _seen_and_kept(portal, device.device_id)
    assert seen is not None and kept == 1
    last = device.skip(2)
    gap = device.gap(3, 4, last)
    assert client.post(f"{base}/gaps", json={"record": gap}).status_code == 200
    assert _seen_and_kept(portal, device.device_id)[1] == 2
    device.record()  # seq 5 lost: the next batch starts beyond the head, signed
    assert client.post(f"{base}/records", json={"records": [device.record()]}).status_code == 409
    assert _seen_and_kept(portal, device.device_id)[1] == 3
