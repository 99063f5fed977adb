"""The station endpoints over real HTTP: enrollment, signed requests, sealed keys, activation.

Requests are signed with agent.protocol.card_keys as the station signs them; the
refusals are what a club, a thief or a replaying observer would meet.
"""

from __future__ import annotations

import base64
import json
import logging
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.protocol import public_key_b64, public_key_from_b64
from agent.protocol.card_keys import (
    CardKeyError,
    open_bundle,
    station_authorization,
    x25519_public_b64,
)
from portal.cards.registry import card_book, create_grant, end_grant, list_cards, list_grants
from portal.state import Portal
from tests.cards.sun import sun_field
from tests.portal.support import SimDevice

UID = "04C767F2066180"
URL = "https://qatysu.kz/c"


def _grant(portal: Portal, count: int = 2, ttl_ms: int = 3_600_000, now: int | None = None) -> str:
    at = portal.clock() if now is None else now
    return create_grant(portal.engine, count, ttl_ms, URL, now=at)


class Station:
    """A station's key and its clock; ``post`` signs like agent.station.client does."""

    def __init__(self, client: httpx.Client, key: Ed25519PrivateKey | None = None) -> None:
        self.client = client
        self.key = key or Ed25519PrivateKey.generate()
        self.last = 0

    def enroll(self, grant: str) -> httpx.Response:
        body = {"grant": grant, "public_key": public_key_b64(self.key)}
        return self.client.post("/api/v1/cards/station", json=body)

    def post(self, path: str, body: dict[str, object], at_ms: int | None = None) -> httpx.Response:
        raw = json.dumps(body).encode()
        self.last = max(time.time_ns() // 1_000_000, self.last + 1) if at_ms is None else at_ms
        auth = station_authorization(self.key, "POST", path, self.last, raw)
        headers = {"Authorization": auth, "Content-Type": "application/json"}
        return self.client.post(path, content=raw, headers=headers)

    def keys(self, uid: str, sealing: X25519PrivateKey, resume: bool = False) -> httpx.Response:
        body = {"uid": uid, "station_key": x25519_public_b64(sealing), "resume": resume}
        return self.post("/api/v1/cards/keys", body)

    def activate(self, uid: str, card: dict[str, str]) -> httpx.Response:
        body = {"uid": uid, "picc": card["picc"], "mac": card["mac"]}
        return self.post("/api/v1/cards/activate", body)


def _enrolled(portal: Portal, client: httpx.Client, count: int = 2) -> Station:
    station = Station(client)
    answer = station.enroll(_grant(portal, count=count))
    assert answer.status_code == 201, answer.text
    return station


def test_enroll_personalise_then_activate(
    portal: Portal, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    grant = _grant(portal)
    station = Station(client)
    enrolled = station.enroll(grant)
    assert enrolled.status_code == 201, enrolled.text
    body = enrolled.json()
    assert (body["count"], body["used"], body["url"]) == (2, 0, URL)
    pinned = public_key_from_b64(body["portal_public_key"])
    assert body["portal_public_key"] == public_key_b64(portal.key)
    assert station.enroll(grant).status_code == 201  # a lost answer: the same key again
    sealing = X25519PrivateKey.generate()
    answer = station.keys(UID, sealing)
    assert answer.status_code == 201, answer.text
    bundle = open_bundle(answer.json(), UID, sealing, pinned)
    assert bundle.url == URL
    assert len({bundle.app_master, bundle.meta_read, bundle.file_read, bundle.key3}) == 4
    with pytest.raises(CardKeyError):
        open_bundle(answer.json(), UID, X25519PrivateKey.generate(), pinned)  # another key
    # The station's retry after a lost answer, or resuming: the same card, no second used.
    assert station.keys(UID, sealing).status_code == 201
    assert station.keys(UID, sealing, resume=True).status_code == 201
    for key in (bundle.meta_read, bundle.file_read, bundle.app_master):
        assert key.hex() not in answer.text.lower()
        assert key.hex() not in caplog.text.lower()
        assert key.hex().upper() not in caplog.text
    uid = bytes.fromhex(UID)
    forged = sun_field(bytes(16), bytes(16), uid, 1)
    assert station.activate(UID, forged).status_code == 422
    first = sun_field(bundle.meta_read, bundle.file_read, uid, 1)
    done = station.activate(UID, first)
    assert done.status_code == 200, done.text
    assert done.json() == {"uid": UID, "state": "active", "counter": 1}
    assert station.keys(UID, sealing).status_code == 409  # active: no keys again
    [row] = list_cards(portal.engine)
    assert (row["state"], row["key_source"], row["activated_counter"]) == (
        "active",
        "diversified",
        1,
    )
    held = card_book(portal.engine, portal.settings.data_dir).keys[UID]
    assert (held.meta_read, held.file_read, held.floor, held.until_ms) == (
        bundle.meta_read,
        bundle.file_read,
        1,
        None,
    )
    [grant_row] = list_grants(portal.engine)
    assert grant_row["used"] == 1 and grant_row["station_key"] == public_key_b64(station.key)


def test_a_card_never_activated_proves_nothing(portal: Portal, client: httpx.Client) -> None:
    station = _enrolled(portal, client)
    assert station.keys(UID, X25519PrivateKey.generate()).status_code == 201
    held = card_book(portal.engine, portal.settings.data_dir).keys[UID]
    assert held.until_ms == 0  # every read of it is card_not_authenticated until activation


def test_resume_never_issues_a_card(portal: Portal, client: httpx.Client) -> None:
    station = _enrolled(portal, client, count=1)
    refused = station.keys(UID, X25519PrivateKey.generate(), resume=True)
    assert refused.status_code == 409
    assert refused.json()["detail"] == f"card {UID} was not issued to this station"
    assert list_cards(portal.engine) == [] and list_grants(portal.engine)[0]["used"] == 0


def test_no_signature_or_a_bad_one_is_401(portal: Portal, client: httpx.Client) -> None:
    station = _enrolled(portal, client)
    body = {
        "uid": UID,
        "station_key": x25519_public_b64(X25519PrivateKey.generate()),
        "resume": False,
    }
    for path in ("/api/v1/cards/keys", "/api/v1/cards/activate"):
        bare = client.post(path, json=body)
        assert bare.status_code == 401, bare.text
    # A bearer grant, as the first version took, is no credential any more.
    grant = _grant(portal)
    bearer = client.post(
        "/api/v1/cards/keys", json=body, headers={"Authorization": f"Bearer {grant}"}
    )
    assert bearer.status_code == 401
    # Signed by a key no grant is bound to.
    assert Station(client).keys(UID, X25519PrivateKey.generate()).status_code == 401
    # A signature over another body (the observer changes the sealing key to theirs).
    raw = json.dumps(body).encode()
    now = time.time_ns() // 1_000_000
    auth = station_authorization(station.key, "POST", "/api/v1/cards/keys", now, raw)
    other = dict(body, station_key=x25519_public_b64(X25519PrivateKey.generate()))
    swapped = client.post(
        "/api/v1/cards/keys",
        content=json.dumps(other).encode(),
        headers={"Authorization": auth, "Content-Type": "application/json"},
    )
    assert (swapped.status_code, swapped.json()["detail"]) == (
        401,
        "the station signature does not verify",
    )
    # A keys request signed for the activation path.
    auth = station_authorization(station.key, "POST", "/api/v1/cards/activate", now + 1, raw)
    moved = client.post(
        "/api/v1/cards/keys",
        content=raw,
        headers={"Authorization": auth, "Content-Type": "application/json"},
    )
    assert moved.status_code == 401
    assert list_cards(portal.engine) == []


def test_a_replayed_or_stale_request_is_401(portal: Portal, client: httpx.Client) -> None:
    station = _enrolled(portal, client)
    raw = json.dumps(
        {"uid": UID, "station_key": x25519_public_b64(X25519PrivateKey.generate()), "resume": False}
    ).encode()
    now = time.time_ns() // 1_000_000
    auth = station_authorization(station.key, "POST", "/api/v1/cards/keys", now, raw)
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    assert client.post("/api/v1/cards/keys", content=raw, headers=headers).status_code == 201
    again = client.post("/api/v1/cards/keys", content=raw, headers=headers)
    assert again.status_code == 401 and "replay" in again.json()["detail"]
    body = {"uid": UID, "picc": "00" * 16, "mac": "00" * 8}
    stale = station.post("/api/v1/cards/activate", body, at_ms=now + 1 - 600_000)
    assert stale.status_code == 401 and "from the portal's clock" in stale.json()["detail"]
    early = station.post("/api/v1/cards/activate", body, at_ms=now + 600_000)
    assert early.status_code == 401


def test_a_club_device_is_not_a_station(portal: Portal, client: httpx.Client) -> None:
    from tests.portal.conftest import enroll

    device: SimDevice = enroll(portal)
    club = Station(client, device.key)
    # Its enrolled key is refused as a station key, with or without a grant.
    assert club.keys(UID, X25519PrivateKey.generate()).status_code == 403
    refused = club.enroll(_grant(portal))
    assert refused.status_code == 403, refused.text
    # An enrollment token is not a station grant.
    from portal.registry import create_enroll_token

    token = create_enroll_token(portal.engine, "c1", 3_600_000, now=portal.clock())
    assert Station(client).enroll(token).status_code == 401
    assert list_cards(portal.engine) == []


def test_a_grant_binds_one_station_and_cards_stay_with_it(
    portal: Portal, client: httpx.Client
) -> None:
    grant = _grant(portal, count=1)
    first = Station(client)
    assert first.enroll(grant).status_code == 201
    thief = Station(client)
    taken = thief.enroll(grant)
    assert (taken.status_code, taken.json()["error"]) == (410, "gone")
    sealing = X25519PrivateKey.generate()
    assert first.keys(UID, sealing).status_code == 201
    used_up = first.keys("04C767F2066181", sealing)
    assert (used_up.status_code, used_up.json()["detail"]) == (401, "station grant used up")
    # Another station, on its own grant, gets neither the keys nor the activation.
    other = _enrolled(portal, client)
    assert other.keys(UID, sealing).status_code == 409
    card = sun_field(bytes(16), bytes(16), bytes.fromhex(UID), 1)
    assert other.activate(UID, card).status_code == 422
    # One key is one station: a key bound to a grant cannot enroll with another.
    assert first.enroll(_grant(portal)).status_code == 409


def test_expired_and_ended_grants(portal: Portal, client: httpx.Client) -> None:
    old = _grant(portal, ttl_ms=1000, now=portal.clock() - 10_000)
    assert Station(client).enroll(old).status_code == 401
    station = _enrolled(portal, client)
    [row] = [g for g in list_grants(portal.engine) if g["station_key"]]
    end_grant(portal.engine, row["station"], now=portal.clock())
    ended = station.keys(UID, X25519PrivateKey.generate())
    assert (ended.status_code, ended.json()["detail"]) == (
        401,
        "station grant ended by the operator",
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"uid": "04C767F2066180"}',
        b'{"uid": "04c767f2066180", "station_key": "AAAA", "resume": false}',
        b'{"uid": "04C767F2066180", "station_key": "AAAA", "resume": false}',
        b'{"uid": "04C767F2066180", "station_key": "AAAA", "resume": 1}',
        b'{"uid": 4, "station_key": "AAAA", "resume": false}',
        b'{"uid": "04C767F2066180", "station_key": "'
        + base64.b64encode(bytes(32))
        + b'", "resume": false}',
    ],
)
def test_bad_bodies_are_400_and_use_no_card(
    portal: Portal, client: httpx.Client, body: bytes
) -> None:
    station = _enrolled(portal, client, count=1)
    now = time.time_ns() // 1_000_000
    auth = station_authorization(station.key, "POST", "/api/v1/cards/keys", now, body)
    station.last = now
    answer = client.post(
        "/api/v1/cards/keys",
        content=body,
        headers={"Authorization": auth, "Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert station.keys("04C767F2066189", X25519PrivateKey.generate()).status_code == 201


@pytest.mark.parametrize(
    "path", ["/api/v1/cards/station", "/api/v1/cards/keys", "/api/v1/cards/activate"]
)
def test_every_body_is_bounded(portal: Portal, client: httpx.Client, path: str) -> None:
    big = b'{"uid": "' + b"A" * 5000 + b'", "station_key": ""}'
    station = _enrolled(portal, client)
    now = time.time_ns() // 1_000_000
    auth = station_authorization(station.key, "POST", path, now, big)
    answer = client.post(
        path, content=big, headers={"Authorization": auth, "Content-Type": "application/json"}
    )
    assert answer.status_code == 413

    # Announced small, sent big: still cut off at the limit, never read whole.
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(64):
            yield b" " * 1024

    streamed = client.post(
        path, content=chunks(), headers={"Authorization": auth, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
