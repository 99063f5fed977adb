"""Ingest over HTTP against the live app: receipts, duplicates, holes, refusals, limits."""

from __future__ import annotations

import gzip
import json
import logging
import socket
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from agent.protocol import ZERO_HASH, public_key_b64, verify_receipt
from portal.db.schema import abuse_log, integrity_events, records, rejected_records
from portal.registry import revoke_device
from portal.state import Portal
from tests.portal.support import LiveServer, SimDevice


def post(client: httpx.Client, device: SimDevice, batch: list[Any], **kw: Any) -> httpx.Response:
    return client.post(f"/api/v1/devices/{device.device_id}/records", json={"records": batch}, **kw)


def stored(portal: Portal, device_id: str) -> list[tuple[int, str]]:
    with portal.engine.connect() as conn:
        rows = conn.execute(
            select(records.c.seq, records.c.hash)
            .where(records.c.device_id == device_id)
            .order_by(records.c.seq)
        )
        return [(int(r.seq), r.hash) for r in rows]


def count(portal: Portal, table: Any, device_id: str) -> int:
    with portal.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(table).where(table.c.device_id == device_id)
            ).scalar_one()
        )


def test_happy_path_stores_and_signs_a_receipt(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    batch = device.batch(20)
    response = post(client, device, batch)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (20, 0)
    receipt = verify_receipt(body["receipt"], portal.key.public_key(), device.device_id)
    assert (receipt["seq"], receipt["record_hash"]) == (20, batch[-1]["hash"])
    assert stored(portal, device.device_id) == [(r["seq"], r["hash"]) for r in batch]
    listed = client.get(
        f"/api/v1/admin/devices/{device.device_id}/records",
        params={"after_seq": 5, "limit": 3},
        headers={"Authorization": "Bearer " + _token(portal)},
    )
    assert listed.status_code == 200
    assert listed.json()["records"] == batch[5:8]


def _token(portal: Portal) -> str:
    from portal.registry import create_admin_token

    return create_admin_token(portal.engine, "t", "auditor", now=portal.clock())


def test_cursor_of_an_empty_chain(portal: Portal, device: SimDevice, client: httpx.Client) -> None:
    response = client.get(f"/api/v1/devices/{device.device_id}/cursor")
    assert response.status_code == 200
    receipt = verify_receipt(response.json()["receipt"], portal.key.public_key(), device.device_id)
    assert (receipt["seq"], receipt["record_hash"]) == (0, ZERO_HASH)


def test_duplicates_are_success(portal: Portal, device: SimDevice, client: httpx.Client) -> None:
    batch = device.batch(10)
    assert post(client, device, batch[:6]).status_code == 200
    again = post(client, device, batch)
    assert again.status_code == 200
    assert (again.json()["accepted"], again.json()["duplicates"]) == (4, 6)
    assert len(stored(portal, device.device_id)) == 10


def test_a_batch_beyond_the_head_gets_409_with_the_expected_seq(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    batch = device.batch(10)
    assert post(client, device, batch[:3]).status_code == 200
    response = post(client, device, batch[5:])
    assert response.status_code == 409
    body = response.json()
    assert (body["error"], body["expected_seq"]) == ("gap", 4)
    assert verify_receipt(body["receipt"], portal.key.public_key())["seq"] == 3
    assert len(stored(portal, device.device_id)) == 3


def test_bad_record_mid_batch_stores_the_prefix_and_keeps_evidence(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    batch = device.batch(10)
    batch[6] = dict(batch[6], sig=public_key_b64(device.key) * 2)  # not a signature
    response = post(client, device, batch)
    assert response.status_code == 422
    body = response.json()
    assert (body["error"], body["seq"], body["reason"]) == ("rejected", 7, "encoding")
    assert verify_receipt(body["receipt"], portal.key.public_key())["seq"] == 6
    assert len(stored(portal, device.device_id)) == 6
    assert count(portal, rejected_records, device.device_id) == 4
    assert count(portal, abuse_log, device.device_id) == 1
    assert count(portal, integrity_events, device.device_id) == 0


def test_signed_but_refused_record_marks_an_integrity_event(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    batch = device.batch(4)
    assert post(client, device, batch).status_code == 200
    device.seq, device.prev = 2, batch[1]["hash"]
    fork = device.record()  # another record at seq 3, validly signed
    response = post(client, device, [fork])
    assert response.status_code == 422
    assert (response.json()["reason"], response.json()["seq"]) == ("fork", 3)
    assert count(portal, integrity_events, device.device_id) == 1
    assert stored(portal, device.device_id) == [(r["seq"], r["hash"]) for r in batch]


def test_unknown_and_revoked_devices(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    assert (
        client.post("/api/v1/devices/dev-nobody/records", json={"records": []}).status_code == 404
    )
    assert client.get("/api/v1/devices/dev-nobody/cursor").status_code == 404
    revoke_device(portal.engine, device.device_id, now=portal.clock())
    assert post(client, device, device.batch(1)).status_code == 403
    assert client.get(f"/api/v1/devices/{device.device_id}/cursor").status_code == 403


def test_malformed_bodies_are_400(portal: Portal, device: SimDevice, client: httpx.Client) -> None:
    url = f"/api/v1/devices/{device.device_id}/records"
    assert client.post(url, content=b"{not json").status_code == 400
    assert client.post(url, json={"recs": []}).status_code == 400
    assert client.post(url, json={"records": {}}).status_code == 400
    assert client.post(url, content=b"\xff\xfe").status_code == 400
    assert (
        client.post(url, content=b"plain", headers={"Content-Encoding": "gzip"}).status_code == 400
    )


def test_a_float_inside_one_record_is_that_record_s_encoding_failure(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    batch = device.batch(3)
    text = json.dumps({"records": batch}).replace('"uid_len": 4', '"uid_len": 4.0', 1)
    response = client.post(
        f"/api/v1/devices/{device.device_id}/records",
        content=text,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert (response.json()["seq"], response.json()["reason"]) == (1, "encoding")


def test_gzip_bodies_are_accepted(portal: Portal, device: SimDevice, client: httpx.Client) -> None:
    batch = device.batch(50)
    response = client.post(
        f"/api/v1/devices/{device.device_id}/records",
        content=gzip.compress(json.dumps({"records": batch}).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 50


def test_a_gzip_bomb_is_refused_with_413(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    bomb = gzip.compress(b'{"records": [' + b" " * (64 * 1024 * 1024) + b"]}", 9)
    assert len(bomb) < portal.settings.max_body_bytes
    response = client.post(
        f"/api/v1/devices/{device.device_id}/records",
        content=bomb,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_too_many_records_or_bytes_is_413(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    url = f"/api/v1/devices/{device.device_id}/records"
    assert client.post(url, json={"records": [{}] * 5001}).status_code == 413
    big = b'{"records": ["' + b"x" * (8 * 1024 * 1024) + b'"]}'
    assert client.post(url, content=big).status_code == 413


def test_health_and_openapi(portal: Portal, client: httpx.Client) -> None:
    health = client.get("/api/v1/health")
    assert health.status_code == 200
    assert health.json()["portal_public_key"] == public_key_b64(portal.key)
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/devices/{device_id}/records" in paths


def test_a_device_hanging_up_mid_body_is_one_line_not_abuse(
    portal: Portal,
    device: SimDevice,
    client: httpx.Client,
    live: LiveServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Power lost mid-upload: nothing stored, no abuse entry, no traceback in the log."""
    caplog.set_level(logging.INFO)
    body = json.dumps({"records": device.batch(50)}).encode()
    head = (
        f"POST /api/v1/devices/{device.device_id}/records HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(head + body[: len(body) // 2])
    deadline = time.monotonic() + 10
    while not any("hung up" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "the portal never noticed the client leaving"
        time.sleep(0.02)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert count(portal, abuse_log, device.device_id) == 0
    assert stored(portal, device.device_id) == []
    # The device comes back and sends the same batch: stored as the first time.
    assert post(client, device, json.loads(body)["records"]).status_code == 200
    assert len(stored(portal, device.device_id)) == 50
