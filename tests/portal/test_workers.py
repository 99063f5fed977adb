"""``serve --workers N``: several portal processes on one socket and one PostgreSQL store."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from portal.cli.base import main
from portal.ratelimit import SharedRateLimiter
from portal.registry import add_center
from portal.settings import Settings
from portal.state import Portal, open_portal
from tests.portal.conftest import _pg_url, enroll
from tests.portal.support import SimDevice
from tests.portal.test_ingest_http import stored
from tests.support.processes import child_pids


def test_sqlite_refuses_more_than_one_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--data-dir", str(tmp_path / "d"), "serve", "--workers", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "--workers 2 needs PostgreSQL (--db); SQLite serves one" in err[-1]
    assert not (tmp_path / "d").exists()  # refused before touching the store


@pytest.fixture
def pg_portal(pg_dsn: str, tmp_path: Path) -> Iterator[Portal]:
    schema = f"qatysu_workers_{secrets.token_hex(4)}"
    admin = sqlalchemy.create_engine(pg_dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    opened = open_portal(Settings(data_dir=tmp_path / "data", db_url=_pg_url(pg_dsn, schema)))
    add_center(opened.engine, "c1", "Center one", now=opened.clock())
    try:
        yield opened
    finally:
        opened.close()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def four_workers(pg_portal: Portal) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, QATYSU_PORTAL_RATE_BURST="100000", QATYSU_PORTAL_RATE_PER_S="100000")
    settings = pg_portal.settings
    cmd = [sys.executable, "-m", "portal", "--data-dir", str(settings.data_dir)]
    cmd += ["--db", settings.db_url, "serve", "--workers", "4", "--port", str(port)]
    server = subprocess.Popen([*cmd, "--no-access-log"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, "serve --workers 4 exited"
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.2)
        while len(child_pids(server.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(child_pids(server.pid)) >= 4
        yield url
    finally:
        server.terminate()
        server.wait(30)


def test_one_device_racing_across_four_workers_stores_its_chain_once(
    pg_portal: Portal, four_workers: str
) -> None:
    device: SimDevice = enroll(pg_portal)
    first, second = device.batch(30), device.batch(30)
    lost = device.skip(5)  # seqs 61..65, lost on the device
    gap = device.gap(61, 65, lost)
    third = device.batch(30)
    base = f"{four_workers}/api/v1/devices/{device.device_id}"
    pieces: list[tuple[str, dict[str, Any]]] = [
        ("records", {"records": first}),
        ("records", {"records": second}),
        ("gaps", {"record": gap}),
        ("records", {"records": [gap, *third]}),
        ("records", {"records": first + second}),  # a retry of a whole earlier round
    ]
    statuses: list[int] = []
    lock = threading.Lock()

    def send(path: str, body: dict[str, Any]) -> None:
        deadline = time.monotonic() + 120
        done = 0
        while done < 2:  # once until accepted, then once more (the device's retry)
            # A fresh connection per request, so the requests land on different workers.
            answer = httpx.post(f"{base}/{path}", json=body, headers={"Connection": "close"})
            with lock:
                statuses.append(answer.status_code)
            assert answer.status_code < 500, answer.text
            if answer.status_code == 200:
                done += 1
            else:
                assert time.monotonic() < deadline, answer.text
                time.sleep(0.05)

    threads = [threading.Thread(target=send, args=p) for p in pieces for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not any(t.is_alive() for t in threads)
    assert statuses.count(200) == 2 * len(threads)
    assert all(s < 500 for s in statuses), statuses
    expected = [(r["seq"], r["hash"]) for r in [*first, *second, gap, *third]]
    assert stored(pg_portal, device.device_id) == expected  # no duplicate, no fork, no hole
    with pg_portal.engine.connect() as conn:
        head = conn.execute(
            sqlalchemy.text("SELECT head_seq, head_hash FROM devices WHERE device_id = :d"),
            {"d": device.device_id},
        ).one()
        buckets = conn.execute(sqlalchemy.text("SELECT count(*) FROM rate_buckets")).scalar()
    assert (head.head_seq, head.head_hash) == expected[-1]
    assert buckets  # the workers charged the shared buckets, not their own


def test_the_shared_rate_limit_is_one_bucket_for_every_process(pg_portal: Portal) -> None:
    now = [1000.0]
    one = SharedRateLimiter(pg_portal.engine, rate=0.5, burst=2, clock=lambda: now[0])
    two = SharedRateLimiter(pg_portal.engine, rate=0.5, burst=2, clock=lambda: now[0])
    assert one.take("device:a") is None
    assert two.take("device:a") is None  # the other process sees the same bucket
    assert one.take("device:a") == pytest.approx(2.0)
    assert two.take("device:a") == pytest.approx(2.0)
    assert two.take("device:b") is None
    now[0] += 2.0
    assert two.take("device:a") is None
    assert one.take("device:a") == pytest.approx(2.0)
