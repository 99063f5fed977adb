"""A lone surrogate escape is junk like any other (docs/portal.md, Device API)."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import func, select

from agent.protocol import parse_json_lenient, verify_receipt
from portal.db.schema import records, rejected_records
from portal.ingest.bundles import ingest_bundle
from portal.state import Portal
from tests.portal.support import SimDevice

JSON = {"Content-Type": "application/json"}


def _count(portal: Portal, table: object, device_id: str) -> int:
    with portal.engine.connect() as conn:
        query = select(func.count()).select_from(table).where(table.c.device_id == device_id)  # type: ignore[attr-defined]
        return int(conn.execute(query).scalar_one())


def _with_surrogate(value: object, old: str) -> str:
    """JSON text of ``value`` with the string ``old`` replaced by ``"\\ud800"``."""
    text = json.dumps(value)
    assert f'"{old}"' in text
    return text.replace(f'"{old}"', '"\\ud800"', 1)


def test_a_lone_surrogate_in_a_record_fails_that_record_and_keeps_the_prefix(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    batch = device.batch(4)
    text = _with_surrogate({"records": batch}, batch[2]["data"]["uid"])
    answer = client.post(f"/api/v1/devices/{device.device_id}/records", content=text, headers=JSON)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert (body["error"], body["seq"], body["reason"]) == ("rejected", 3, "encoding")
    assert verify_receipt(body["receipt"], portal.key.public_key())["seq"] == 2
    assert _count(portal, records, device.device_id) == 2
    assert _count(portal, rejected_records, device.device_id) == 2


def test_a_lone_surrogate_as_a_key_fails_that_record(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    batch = device.batch(2)
    text = json.dumps({"records": batch}).replace('"reader"', '"\\udfff"', 2)
    answer = client.post(f"/api/v1/devices/{device.device_id}/records", content=text, headers=JSON)
    assert answer.status_code == 422, answer.text
    assert (answer.json()["seq"], answer.json()["reason"]) == (1, "encoding")


def test_a_lone_surrogate_in_a_gap_is_an_encoding_refusal(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    last = device.skip(2)
    gap = device.gap(1, 2, last)
    text = _with_surrogate({"record": gap}, "quarantined")
    answer = client.post(f"/api/v1/devices/{device.device_id}/gaps", content=text, headers=JSON)
    assert answer.status_code == 422, answer.text
    assert answer.json()["reason"] == "encoding"


def test_a_lone_surrogate_in_an_enrollment_is_400(portal: Portal, client: httpx.Client) -> None:
    for field in ("token", "public_key", "agent_version"):
        body = {"token": "t", "public_key": "k", "agent_version": "1", "hardware": {"m": "x"}}
        body[field] = "X"
        answer = client.post("/api/v1/enroll", content=_with_surrogate(body, "X"), headers=JSON)
        assert (answer.status_code, answer.json()["error"]) == (400, "malformed"), answer.text
    body = {"token": "t", "public_key": "k", "hardware": {"model": "X"}}
    answer = client.post("/api/v1/enroll", content=_with_surrogate(body, "X"), headers=JSON)
    assert (answer.status_code, answer.json()["error"]) == (400, "malformed"), answer.text


def test_a_lone_surrogate_in_a_bundle_fails_that_record(portal: Portal, device: SimDevice) -> None:
    batch = device.batch(3)
    bundle = {"v": 1, "device": device.device_id, "public_key": device.public_key}
    text = _with_surrogate(dict(bundle, records=batch), batch[1]["data"]["uid"])
    done = ingest_bundle(portal.engine, portal.key, parse_json_lenient(text), now=portal.clock())
    assert done.accepted == 1
    assert done.last.failure is not None
    assert (done.last.failure.seq, done.last.failure.reason) == (2, "encoding")
    assert _count(portal, rejected_records, device.device_id) == 2
