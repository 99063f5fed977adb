"""check_signatures="tail": one signature per linked run, the rest checked later."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from portal.app import create_app
from portal.db.schema import integrity_events, records
from portal.ingest.batch import ingest_batch
from portal.ingest.reverify import check_unchecked_signatures, verify_stored
from portal.registry import add_center
from portal.settings import Settings
from portal.state import Portal, open_portal
from tests.portal.conftest import enroll
from tests.portal.support import LiveServer


@pytest.fixture
def tail_portal(settings: Settings) -> Iterator[Portal]:
    opened = open_portal(settings.with_(check_signatures="tail", signature_pass_s=0.05))
    add_center(opened.engine, "c1", "One", now=opened.clock())
    yield opened
    opened.close()


def checked_flags(portal: Portal, device_id: str) -> list[bool]:
    with portal.engine.connect() as conn:
        query = (
            select(records.c.sig_checked)
            .where(records.c.device_id == device_id)
            .order_by(records.c.seq)
        )
        return [bool(v) for v in conn.execute(query).scalars()]


def test_only_the_tail_is_checked_then_verify_finds_a_bad_inner_signature(
    tail_portal: Portal,
) -> None:
    portal = tail_portal
    device = enroll(portal)
    batch = device.batch(20)
    batch[4] = dict(batch[4], sig=batch[3]["sig"])  # well formed, but not this record's
    outcome = ingest_batch(
        portal.engine, portal.key, device.device_id, batch, now=1, signatures="tail"
    )
    assert outcome.status == 200 and outcome.accepted == 20
    assert checked_flags(portal, device.device_id) == [False] * 19 + [True]
    [verdict] = verify_stored(portal.engine, device.device_id, now=2)
    assert not verdict.ok
    assert verdict.failure is not None and (verdict.failure.seq, verdict.failure.reason) == (
        5,
        "signature",
    )
    # verify marked 1..4 checked before it stopped at 5; the pass checks the other 15.
    assert check_unchecked_signatures(portal.engine, now=3) == (15, 1)
    assert checked_flags(portal, device.device_id) == [True] * 20
    with portal.engine.connect() as conn:
        kinds = list(
            conn.execute(select(integrity_events.c.kind).order_by(integrity_events.c.id)).scalars()
        )
    assert kinds == ["stored_chain", "signature_late"]


def test_a_bad_tail_signature_is_refused_and_the_prefix_ends_on_a_checked_one(
    tail_portal: Portal,
) -> None:
    portal = tail_portal
    device = enroll(portal)
    batch = device.batch(10)
    batch[-1] = dict(batch[-1], sig=batch[0]["sig"])
    outcome = ingest_batch(
        portal.engine, portal.key, device.device_id, batch, now=1, signatures="tail"
    )
    assert (outcome.status, outcome.accepted) == (422, 9)
    assert outcome.failure is not None and (outcome.failure.seq, outcome.failure.reason) == (
        10,
        "signature",
    )
    # The stored prefix ends on a record whose own signature was checked.
    assert checked_flags(portal, device.device_id) == [False] * 8 + [True]
    [verdict] = verify_stored(portal.engine, device.device_id, now=2)
    assert verdict.ok and verdict.records == 9


def test_the_background_pass_checks_what_the_upload_did_not(
    tail_portal: Portal, tmp_path: Path
) -> None:
    portal = tail_portal
    device = enroll(portal)
    server = LiveServer(create_app(portal.settings, portal=portal))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            url = f"/api/v1/devices/{device.device_id}/records"
            assert client.post(url, json={"records": device.batch(50)}).status_code == 200
        done = threading.Event()
        for _ in range(2000):
            if all(checked_flags(portal, device.device_id)):
                done.set()
                break
            done.wait(0.01)
        assert done.is_set(), "background pass did not check the stored signatures"
    finally:
        server.stop()


def test_a_prefix_ending_on_a_bad_unchecked_signature_is_rechecked_in_full(
    tail_portal: Portal,
) -> None:
    portal = tail_portal
    device = enroll(portal)
    batch = device.batch(5)
    batch[4] = dict(batch[4], sig=batch[0]["sig"])  # seq 5: a wrong signature
    # A validly signed record linked to seq 5 but reusing seq 3: the sequence
    # phase stops there, so the stored prefix would end on seq 5, whose own
    # signature no checked signature covers.
    device.seq, device.prev = 2, batch[4]["hash"]
    batch.append(device.record())
    outcome = ingest_batch(
        portal.engine, portal.key, device.device_id, batch, now=1, signatures="tail"
    )
    assert (outcome.status, outcome.accepted) == (422, 4)
    assert outcome.failure is not None and (outcome.failure.seq, outcome.failure.reason) == (
        5,
        "signature",
    )
    assert checked_flags(portal, device.device_id) == [True] * 4
