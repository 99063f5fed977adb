"""The tamper campaign: mutated batches are refused and stored chains stay honest."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from agent.protocol import Failure, verify_receipt
from portal.app import create_app
from portal.db.schema import abuse_log, integrity_events, records
from portal.ingest.batch import ingest_batch
from portal.ingest.outcome import IngestOutcome
from portal.state import Portal
from tests.portal.conftest import enroll
from tests.portal.support import LiveServer, SimDevice
from tests.portal.tamper import Campaign

Send = Callable[[SimDevice, list[Any]], IngestOutcome]


def chain(portal: Portal, device_id: str) -> list[tuple[int, str]]:
    with portal.engine.connect() as conn:
        rows = conn.execute(
            select(records.c.seq, records.c.hash)
            .where(records.c.device_id == device_id)
            .order_by(records.c.seq)
        )
        return [(int(r.seq), r.hash) for r in rows]


def count(portal: Portal, table: Any, device_id: str) -> int:
    with portal.engine.connect() as conn:
        query = select(func.count()).select_from(table).where(table.c.device_id == device_id)
        return int(conn.execute(query).scalar_one())


def run_campaign(portal: Portal, n: int, seed: int, send: Send) -> Counter[str]:
    """``n`` mutations against one device; checks every answer and the stored chains."""
    device, other = enroll(portal), enroll(portal)
    honest = device.batch(6 * n + 50)
    other_honest = other.batch(20)
    assert send(other, other_honest).status == 200
    assert send(device, honest[:10]).status == 200
    head = 10
    campaign = Campaign(device, honest, other_honest, seed)
    kinds: Counter[str] = Counter()
    signed = unsigned = 0
    for i in range(n):
        case = campaign.make(head)
        kinds[case.kind] += 1
        outcome = send(device, case.batch)
        want = case.expected
        where = f"mutation {i} ({case.kind})"
        assert outcome.status == want.status, where
        assert outcome.failure is not None and outcome.failure.reason == want.reason, where
        if want.status == 422:
            assert outcome.failure.seq == want.seq, where
            signed += want.signed
            unsigned += not want.signed
        assert outcome.accepted == want.stored, where
        head += want.stored
        assert outcome.receipt["seq"] == head, where
        verify_receipt(outcome.receipt, portal.key.public_key(), device.device_id)
    assert chain(portal, device.device_id) == [(r["seq"], r["hash"]) for r in honest[:head]]
    assert chain(portal, other.device_id) == [(r["seq"], r["hash"]) for r in other_honest]
    assert count(portal, integrity_events, device.device_id) == signed
    assert count(portal, integrity_events, other.device_id) == 0
    assert count(portal, abuse_log, device.device_id) == unsigned
    return kinds


def in_process(portal: Portal) -> Send:
    def send(device: SimDevice, batch: list[Any]) -> IngestOutcome:
        return ingest_batch(
            portal.engine, portal.key, device.device_id, batch, now=portal.clock(), pool=portal.pool
        )

    return send


def over_http(client: httpx.Client) -> Send:
    def send(device: SimDevice, batch: list[Any]) -> IngestOutcome:
        response = client.post(
            f"/api/v1/devices/{device.device_id}/records", json={"records": batch}
        )
        body = response.json()
        failure = None
        if response.status_code == 409:
            failure = Failure(None, body["error"], "")
        elif response.status_code == 422:
            failure = Failure(body["seq"], body["reason"], body["detail"])
        return IngestOutcome(
            response.status_code, body["receipt"], body.get("accepted", 0), failure=failure
        )

    return send


@pytest.fixture
def http_client(portal: Portal) -> Iterator[httpx.Client]:
    server = LiveServer(create_app(portal.settings, portal=portal))
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
    server.stop()


def test_campaign_over_http(portal: Portal, http_client: httpx.Client) -> None:
    """The issue's campaign: 1,000 mutations through the served app, on each back end."""
    kinds = run_campaign(portal, 1000, seed=5, send=over_http(http_client))
    assert sum(kinds.values()) == 1000
    assert len(kinds) == 12  # every kind of mutation was tried


def test_campaign_in_process(portal: Portal) -> None:
    """Another seed straight through ``ingest_batch``, as ``import-bundle`` calls it."""
    kinds = run_campaign(portal, 300, seed=11, send=in_process(portal))
    assert sum(kinds.values()) == 300
