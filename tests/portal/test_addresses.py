"""Upload addresses through the real portal: a cloned device key is device_clone_suspected.

A device signs and uploads through uvicorn from one local address; a second
"device" holding the same key uploads from another (httpx binds 127.0.0.2), each
continuing the chain from ``/cursor``. Its copy of boot id and monotonic clock is
perfect, so only the addresses show the second machine. An honest device that
changes address once is not a clone. The portal's clock is the test's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from portal.app import create_app
from portal.db.schema import device_addresses
from portal.reconcile.lessons import local_ms
from portal.reconcile.model import ReconcileSettings
from portal.reconcile.store import apply_import, run_reconciliation
from portal.registry import add_center, create_enroll_token, enroll_device
from portal.settings import Settings
from portal.state import Portal, open_portal
from tests.portal.support import LiveServer, SimDevice

ZONE = ZoneInfo("Asia/Almaty")
DAY = date(2024, 6, 3)  # a Monday
START = local_ms(DAY, time(15, 0), ZONE)
S, MIN = 1000, 60_000
UID = "04A1B2C3"


class Clock:
    def __init__(self, at: int) -> None:
        self.at = at

    def __call__(self) -> int:
        return self.at


@pytest.fixture
def site(settings: Settings) -> Iterator[tuple[Portal, LiveServer, Clock]]:
    clock = Clock(START - 2 * 3600 * S)
    portal = open_portal(settings, clock=clock)
    add_center(portal.engine, "C1", "Center one", now=clock())
    server = LiveServer(create_app(portal.settings, portal=portal))
    server.start()
    yield portal, server, clock
    server.stop()
    portal.close()


class Machine:
    """One Pi holding the device key, uploading from ``address``."""

    def __init__(self, key: SimDevice, url: str, address: str, boot: str) -> None:
        self.key = key
        self.boot = boot
        transport = httpx.HTTPTransport(local_address=address)
        self.http = httpx.Client(base_url=url, transport=transport, timeout=30)
        self.anchor = ""

    def send(self, clock: Clock, at: int, kind: str, data: dict[str, Any]) -> None:
        """Continue the chain from the portal's cursor with one record made at ``at``."""
        dev = self.key.device_id
        head = self.http.get(f"/api/v1/devices/{dev}/cursor").json()["receipt"]
        self.key.seq, self.key.prev = head["seq"], head["record_hash"]
        self.key.wall_ms = at - 1000  # record() adds one second
        record = self.key.record(
            kind,
            data,
            boot=self.boot,
            mono_ns=(at - START + 10 * 3600 * S) * 1_000_000,
            anchor=self.anchor,
        )
        clock.at = at + 1500
        answer = self.http.post(f"/api/v1/devices/{dev}/records", json={"records": [record]})
        assert answer.status_code == 200, answer.text
        self.anchor = answer.json()["receipt"]["hash"]

    def tap(self, clock: Clock, at: int) -> None:
        self.send(clock, at - 3 * S, "door", {"sensor": "front", "state": "open"})
        badge = {"reader": "main", "driver": "mfrc522", "uid": UID, "uid_len": 4}
        self.send(clock, at, "badge", badge)
        self.send(clock, at + 8 * S, "door", {"sensor": "front", "state": "closed"})


def _enroll(portal: Portal) -> SimDevice:
    key = SimDevice()
    token = create_enroll_token(portal.engine, "C1", 3_600_000, now=portal.clock())
    done = enroll_device(portal.engine, token, key.public_key, "test", {}, now=portal.clock())
    key.device_id = done.device_id
    return key


def _reconcile(portal: Portal) -> tuple[str, tuple[str, ...]]:
    files = {
        "schedule": b"group_id,center_id,weekday,start,end,price_kzt\nG1,C1,1,15:00,16:30,3000\n",
        "roster": f"child_id,badge_uid,center_id,group_id\nK1,{UID},C1,G1\n".encode(),
        "confirmations": b"child_id,group_id,date,confirmed_at,signer\n"
        b"K1,G1,2024-06-03,2024-06-03 20:00,parent\n",
    }
    for kind, data in files.items():
        apply_import(portal.engine, kind, data, f"{kind}.csv", now=portal.clock())
    result = run_reconciliation(portal.engine, DAY, DAY, ReconcileSettings(), ZONE)
    (row,) = result.rows
    return row.status, row.reasons


def _day(clock: Clock, beats: list[Machine], tap: Machine) -> None:
    """A boot, heartbeats every 5 min from ``beats[k % len]``, one tap before the lesson."""
    first = beats[0]
    first.send(
        clock,
        START - 2 * 3600 * S,
        "boot",
        {"doors": ["front"], "readers": ["main"], "drivers": ["mfrc522"]},
    )
    at = START - 2 * 3600 * S + MIN
    tapped = False
    k = 0
    while at < START + 2 * 3600 * S:
        if not tapped and at > START - 10 * MIN:
            tap.tap(clock, START - 10 * MIN)
            tapped = True
        beats[k % len(beats)].send(clock, at, "heartbeat", {"pending": 0})
        at += 5 * MIN
        k += 1


def _runs(portal: Portal, device: str) -> list[tuple[str, int]]:
    t = device_addresses
    with portal.engine.connect() as conn:
        return [
            (r.address, r.uploads)
            for r in conn.execute(
                select(t.c.address, t.c.uploads).where(t.c.device_id == device).order_by(t.c.id)
            )
        ]


def test_a_second_machine_with_the_key_is_a_clone(site: tuple[Portal, LiveServer, Clock]) -> None:
    portal, server, clock = site
    key = _enroll(portal)
    boot = str(uuid.uuid4())
    first = Machine(key, server.url, "127.0.0.1", boot)
    clone = Machine(key, server.url, "127.0.0.2", boot)  # a perfect copy of the chain's state
    # The clone sends the heartbeats in turn with the original and taps the card.
    _day(clock, [first, clone], clone)
    runs = _runs(portal, key.device_id)
    assert [a for a, _ in runs[:3]] == ["127.0.0.1", "127.0.0.2", "127.0.0.1"]
    status, reasons = _reconcile(portal)
    assert status == "suspect" and "device_clone_suspected" in reasons, (status, reasons)


def test_an_honest_address_change_is_not_a_clone(site: tuple[Portal, LiveServer, Clock]) -> None:
    portal, server, clock = site
    key = _enroll(portal)
    boot = str(uuid.uuid4())
    before = Machine(key, server.url, "127.0.0.1", boot)
    after = Machine(key, server.url, "127.0.0.2", boot)  # the same Pi, a new lease
    first = START - 2 * 3600 * S
    before.send(
        clock, first, "boot", {"doors": ["front"], "readers": ["main"], "drivers": ["mfrc522"]}
    )
    at = first + MIN
    while at < START - 30 * MIN:
        before.send(clock, at, "heartbeat", {"pending": 0})
        at += 5 * MIN
    after.anchor = before.anchor
    _day_rest(clock, after, at)
    runs = _runs(portal, key.device_id)
    assert [a for a, _ in runs] == ["127.0.0.1", "127.0.0.2"]
    status, reasons = _reconcile(portal)
    assert "device_clone_suspected" not in reasons, (status, reasons)
    assert status == "verified", (status, reasons)


def _day_rest(clock: Clock, machine: Machine, at: int) -> None:
    tapped = False
    while at < START + 2 * 3600 * S:
        if not tapped and at > START - 10 * MIN:
            machine.tap(clock, START - 10 * MIN)
            tapped = True
        machine.send(clock, at, "heartbeat", {"pending": 0})
        at += 5 * MIN


def test_unsigned_uploads_note_no_address(site: tuple[Portal, LiveServer, Clock]) -> None:
    portal, server, _ = site
    key = _enroll(portal)
    junk = SimDevice(device_id=key.device_id)  # another key: signatures fail
    with httpx.Client(
        base_url=server.url, transport=httpx.HTTPTransport(local_address="127.0.0.3")
    ) as http:
        answer = http.post(
            f"/api/v1/devices/{key.device_id}/records", json={"records": [junk.record()]}
        )
    assert answer.status_code == 422
    assert _runs(portal, key.device_id) == []
