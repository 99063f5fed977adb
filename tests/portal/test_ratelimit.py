"""Per-device request rate: 429 with Retry-After, recovering as the clock moves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from portal.app import create_app
from portal.ratelimit import RateLimiter
from portal.registry import add_center
from portal.settings import Settings
from portal.state import open_portal
from tests.portal.conftest import enroll
from tests.portal.support import LiveServer, SimDevice


def test_bucket_refills_with_the_clock() -> None:
    now = [100.0]
    limiter = RateLimiter(rate=0.5, burst=2, clock=lambda: now[0])
    assert limiter.take("a") is None
    assert limiter.take("a") is None
    wait = limiter.take("a")
    assert wait == pytest.approx(2.0)
    assert limiter.take("b") is None  # another device has its own bucket
    now[0] += 2.0
    assert limiter.take("a") is None


@pytest.fixture
def slow_client(tmp_path: Path) -> Iterator[tuple[httpx.Client, list[float], str]]:
    now = [0.0]
    portal = open_portal(
        Settings(data_dir=tmp_path / "d", rate_burst=3, rate_per_s=0.25), monotonic=lambda: now[0]
    )
    add_center(portal.engine, "c1", "One", now=portal.clock())
    device = enroll(portal)
    server = LiveServer(create_app(portal.settings, portal=portal))
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client, now, device.device_id
    server.stop()
    portal.close()


def test_429_with_retry_after(slow_client: tuple[httpx.Client, list[float], str]) -> None:
    client, now, device_id = slow_client
    url = f"/api/v1/devices/{device_id}/cursor"
    assert [client.get(url).status_code for _ in range(3)] == [200, 200, 200]
    limited = client.get(url)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "4"
    assert (
        client.post(f"/api/v1/devices/{device_id}/records", json={"records": []}).status_code == 429
    )
    now[0] += 4.0
    assert client.get(url).status_code == 200


@pytest.fixture
def slow_device(tmp_path: Path) -> Iterator[tuple[httpx.Client, list[float], SimDevice]]:
    now = [0.0]
    portal = open_portal(
        Settings(data_dir=tmp_path / "d", rate_burst=3, rate_per_s=0.25), monotonic=lambda: now[0]
    )
    add_center(portal.engine, "c1", "One", now=portal.clock())
    device = enroll(portal)
    server = LiveServer(create_app(portal.settings, portal=portal))
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client, now, device
    server.stop()
    portal.close()


def test_junk_sent_to_a_device_id_does_not_starve_its_signed_uploads(
    slow_device: tuple[httpx.Client, list[float], SimDevice],
) -> None:
    client, _now, device = slow_device
    url = f"/api/v1/devices/{device.device_id}"
    stranger = SimDevice(device_id=device.device_id)  # the right id, another key
    junk = [
        lambda: client.post(f"{url}/records", content=b"not json"),
        lambda: client.post(f"{url}/records", json={"records": [{"seq": 1}]}),
        lambda: client.post(f"{url}/records", json={"records": stranger.batch(2)}),
        lambda: client.post(f"{url}/gaps", json={"record": stranger.record()}),
        lambda: client.post(f"{url}/records", json={"records": []}),
    ]
    answers = [junk[i % len(junk)]().status_code for i in range(40)]  # no clock tick: a flood
    assert answers.count(429) >= 35, answers
    # The device's genuine, signed uploads and gap declaration still go through.
    for _ in range(2):
        ok = client.post(f"{url}/records", json={"records": device.batch(3)})
        assert ok.status_code == 200, ok.text
        assert ok.json()["accepted"] == 3
    lost = device.skip(2)
    gap = client.post(f"{url}/gaps", json={"record": device.gap(7, 8, lost)})
    assert gap.status_code == 200, gap.text
    # The device's own bucket still limits the device.
    limited = client.post(f"{url}/records", json={"records": device.batch(1)})
    assert limited.status_code == 429
