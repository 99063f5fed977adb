"""Two connections uploading the same batch at once store it once."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from portal.ingest.batch import ingest_batch
from portal.ingest.outcome import IngestOutcome
from portal.state import Portal
from tests.portal.support import SimDevice
from tests.portal.test_ingest_http import stored


def race(calls: list[Any]) -> list[Any]:
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait(10)
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_same_batch_from_two_connections_in_process(portal: Portal, device: SimDevice) -> None:
    honest: list[dict[str, Any]] = []
    for _ in range(15):
        batch = device.batch(40)
        honest += batch

        def upload(batch: list[dict[str, Any]] = batch) -> IngestOutcome:
            return ingest_batch(
                portal.engine, portal.key, device.device_id, batch, now=portal.clock()
            )

        first, second = race([upload, upload])
        assert (first.status, second.status) == (200, 200)
        assert first.accepted + second.accepted == 40
        assert first.duplicates + second.duplicates == 40
    assert stored(portal, device.device_id) == [(r["seq"], r["hash"]) for r in honest]


def test_same_batch_from_two_http_clients(portal: Portal, device: SimDevice, live: Any) -> None:
    batch = device.batch(300)
    url = f"{live.url}/api/v1/devices/{device.device_id}/records"
    with httpx.Client(timeout=60) as one, httpx.Client(timeout=60) as two:
        answers = race(
            [
                lambda: one.post(url, json={"records": batch}),
                lambda: two.post(url, json={"records": batch}),
            ]
        )
    assert [a.status_code for a in answers] == [200, 200]
    assert sorted(a.json()["accepted"] for a in answers) == [0, 300]
    assert stored(portal, device.device_id) == [(r["seq"], r["hash"]) for r in batch]
