"""What the ingest writes is what was sent: awkward text survives both stores' bulk paths."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import select

from portal.db.schema import records
from portal.registry import create_admin_token
from portal.state import Portal
from tests.portal.support import SimDevice

AWKWARD_DATA: list[dict[str, Any]] = [
    {"reader": "tab\there", "uid": "04A1", "uid_len": 4},
    {"note": 'line\nbreak, back\\slash, "quotes", \\N and \\.'},
    {"note": "қатысу ✓ 🎒", "nested": {"deep": [1, -(2**53) + 1, 2**53 - 1, None, True]}},
    {"note": "control \u0001 and nul-like \\u0000 text", "empty": {}, "list": []},
]


def test_awkward_values_round_trip_through_the_store(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    batch = [device.record("note", data) for data in AWKWARD_DATA] + device.batch(3)
    url = f"/api/v1/devices/{device.device_id}/records"
    response = client.post(url, json={"records": batch})
    assert response.status_code == 200, response.text
    token = create_admin_token(portal.engine, "t", "auditor", now=portal.clock())
    listed = client.get(
        f"/api/v1/admin/devices/{device.device_id}/records",
        params={"after_seq": 0, "limit": 100},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert listed.json()["records"] == batch
    with portal.engine.connect() as conn:
        rows = conn.execute(
            select(records.c.data, records.c.type, records.c.sig_checked)
            .where(records.c.device_id == device.device_id)
            .order_by(records.c.seq)
        ).all()
    assert [row.data for row in rows] == [r["data"] for r in batch]
    assert all(row.sig_checked for row in rows)


def _upload_text(device: SimDevice, n: int) -> tuple[str, list[dict[str, Any]], str]:
    """The upload URL, ``n`` fresh records, and the body text to edit."""
    batch = device.batch(n)
    return f"/api/v1/devices/{device.device_id}/records", batch, json.dumps({"records": batch})


def test_a_repeated_key_refuses_the_envelope_but_fails_only_its_record_inside(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    url, _, text = _upload_text(device, 3)
    doubled = client.post(url, content='{"records": [], ' + text[1:])
    assert doubled.status_code == 400
    inside = text.replace('"uid_len": 4', '"uid_len": 4, "uid_len": 4', 3)
    inside = inside.replace('"uid_len": 4, "uid_len": 4', '"uid_len": 4', 1)  # records 2, 3
    response = client.post(url, content=inside)
    assert response.status_code == 422
    body = response.json()
    assert (body["seq"], body["reason"], body["accepted"]) == (2, "encoding", 1)
    assert "duplicate key 'uid_len'" in body["detail"]


def test_integers_beyond_the_value_set_fail_their_record(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    url, batch, text = _upload_text(device, 4)
    mark = f'"wall_ms": {batch[2]["wall_ms"]}'
    for huge in ("9007199254740992", "9" * 5000):
        response = client.post(url, content=text.replace(mark, f'"wall_ms": {huge}'))
        assert response.status_code == 422, response.text
        body = response.json()
        assert (body["seq"], body["reason"]) == (3, "encoding")
        assert "outside |n| < 2^53" in body["detail"]
