"""Declared holes (docs/protocol.md): bridged exactly, refused when not signed by the device."""

from __future__ import annotations

from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from agent.protocol import ZERO_HASH, make_bundle, seal, verify_receipt
from portal.db.schema import abuse_log, declared_gaps, integrity_events
from portal.ingest.bundles import ingest_bundle
from portal.state import Portal
from tests.portal.support import SimDevice
from tests.portal.test_ingest_http import count, post, stored


def declare(client: httpx.Client, device: SimDevice, record: Any) -> httpx.Response:
    return client.post(f"/api/v1/devices/{device.device_id}/gaps", json={"record": record})


def events(portal: Portal, device_id: str) -> list[tuple[str, int | None, int | None]]:
    with portal.engine.connect() as conn:
        rows = conn.execute(
            select(
                integrity_events.c.kind, integrity_events.c.first_seq, integrity_events.c.last_seq
            )
            .where(integrity_events.c.device_id == device_id)
            .order_by(integrity_events.c.id)
        )
        return [(r.kind, r.first_seq, r.last_seq) for r in rows]


def test_a_declared_hole_is_bridged(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    head = device.batch(3)
    assert post(client, device, head).status_code == 200
    last_hash = device.skip(3)  # seq 4..6 lost in a quarantined file
    after = device.batch(3)  # 7..9
    gap = device.gap(4, 6, last_hash)  # seq 10
    response = declare(client, device, gap)
    assert response.status_code == 200, response.text
    receipt = verify_receipt(response.json()["receipt"], portal.key.public_key(), device.device_id)
    assert (receipt["seq"], receipt["record_hash"]) == (6, last_hash)
    again = declare(client, device, gap)
    assert again.status_code == 200
    assert again.json()["receipt"]["seq"] == 6
    upload = post(client, device, [*after, gap])
    assert upload.status_code == 200, upload.text
    assert [s for s, _ in stored(portal, device.device_id)] == [1, 2, 3, 7, 8, 9, 10]
    assert events(portal, device.device_id) == [("gap", 4, 6)]
    # The declaration after the fact changes nothing.
    assert declare(client, device, gap).json()["receipt"]["seq"] == 10


def test_lost_newest_records_resume_after_zero_prev(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    assert post(client, device, device.batch(3)).status_code == 200
    device.skip(2)  # 4..5 made but the files are gone; their hashes unknown
    device.prev = ZERO_HASH
    gap = device.gap(4, 5, "")  # seq 6, prev 64 zeros
    response = declare(client, device, gap)
    assert response.status_code == 200, response.text
    receipt = response.json()["receipt"]
    assert (receipt["seq"], receipt["record_hash"]) == (5, ZERO_HASH)
    assert post(client, device, [gap, device.record()]).status_code == 200
    assert [s for s, _ in stored(portal, device.device_id)] == [1, 2, 3, 6, 7]


def test_a_partly_held_range_is_accepted(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    batch = device.batch(5)
    assert post(client, device, batch[:3]).status_code == 200
    gap = device.gap(2, 5, batch[4]["hash"])  # the portal already holds 2..3
    assert declare(client, device, gap).status_code == 200
    assert post(client, device, [gap]).status_code == 200
    assert [s for s, _ in stored(portal, device.device_id)] == [1, 2, 3, 6]


def test_wrongly_signed_or_unsigned_declarations_are_refused(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    assert post(client, device, device.batch(3)).status_code == 200
    last_hash = device.skip(3)
    honest = device.gap(4, 6, last_hash)
    body = {k: v for k, v in honest.items() if k not in ("hash", "sig")}
    forged = seal(body, Ed25519PrivateKey.generate())
    response = declare(client, device, forged)
    assert response.status_code == 422
    assert response.json()["reason"] == "signature"
    unsigned = dict(honest, sig="")
    response = declare(client, device, unsigned)
    assert response.status_code == 422
    assert response.json()["reason"] == "encoding"
    assert response.json()["receipt"]["seq"] == 3
    assert events(portal, device.device_id) == []
    with portal.engine.connect() as conn:
        assert conn.execute(select(declared_gaps)).first() is None
    # The records after the hole stay refused.
    assert post(client, device, [device.record()]).status_code == 409


def test_a_range_that_misses_the_expected_seq_is_refused(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    assert post(client, device, device.batch(3)).status_code == 200
    device.skip(2)  # 4..5 lost but not declared
    last_hash = device.skip(3)  # 6..8
    gap = device.gap(6, 8, last_hash)  # declares only 6..8: seq 4 is still expected
    response = declare(client, device, gap)
    assert response.status_code == 422
    assert response.json()["reason"] == "gap"
    assert declare(client, device, device.batch(1)[0]).json()["reason"] == "encoding"


def test_a_bundle_bridges_the_holes_it_declares(portal: Portal, device: SimDevice) -> None:
    first = device.batch(2)
    last_hash = device.skip(2)
    rest = [*device.batch(2), device.gap(3, 4, last_hash)]
    bundle = {
        "v": 1,
        "device": device.device_id,
        "public_key": device.public_key,
        "records": [*first, *rest],
    }
    result = ingest_bundle(portal.engine, portal.key, bundle, now=portal.clock())
    assert result.last.status == 200
    assert result.accepted == 5
    assert events(portal, device.device_id) == [("gap", 3, 4)]


def test_a_record_inside_a_declared_hole_is_a_regression(
    portal: Portal, device: SimDevice, client: httpx.Client
) -> None:
    head = device.batch(3)
    assert post(client, device, head).status_code == 200
    lost = device.batch(3)  # 4..6, declared lost, then found again
    gap = device.gap(4, 6, lost[-1]["hash"])
    assert declare(client, device, gap).status_code == 200
    response = post(client, device, [lost[1]])
    assert response.status_code == 422
    assert (response.json()["seq"], response.json()["reason"]) == (5, "regression")
    assert events(portal, device.device_id)[-1] == ("rejected", 5, 5)


def test_a_bundle_bridges_a_hole_declared_chunks_later(portal: Portal, device: SimDevice) -> None:
    """A refused record's declaration comes after a week of backlog: chunks must not split them."""
    first = device.batch(100)
    last_hash = device.skip(1)  # seq 101 was quarantined
    backlog = device.batch(12_000)  # 102 .. 12,101
    declaration = device.gap(101, 101, last_hash)
    bundle = make_bundle(device.device_id, device.public_key, [*first, *backlog, declaration])
    result = ingest_bundle(portal.engine, portal.key, bundle, now=portal.clock())
    assert result.last.status == 200, result.last.body()
    assert result.accepted == 100 + 12_000 + 1
    assert result.last.receipt["seq"] == 12_102
    assert events(portal, device.device_id) == [("gap", 101, 101)]


def test_a_bundle_with_a_forged_distant_declaration_stops_at_the_hole(
    portal: Portal, device: SimDevice
) -> None:
    first = device.batch(100)
    last_hash = device.skip(5)
    backlog = device.batch(6_000)
    declaration = device.gap(101, 105, last_hash)
    declaration["data"]["reason"] = "power"  # changed after signing: the hash no longer holds
    bundle = make_bundle(device.device_id, device.public_key, [*first, *backlog, declaration])
    result = ingest_bundle(portal.engine, portal.key, bundle, now=portal.clock())
    assert result.last.status == 422
    assert result.last.failure is not None and result.last.failure.reason == "hash"
    assert result.accepted == 100
    assert result.last.receipt["seq"] == 100
    # Not the device's signature on what arrived: abuse, not the device's integrity event.
    assert events(portal, device.device_id) == []
    assert count(portal, abuse_log, device.device_id) == 1
