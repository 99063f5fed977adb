"""The station endpoints over real HTTP: grants, sealed keys, activation."""

from __future__ import annotations

import base64
import logging

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.protocol import public_key_from_b64
from agent.protocol.card_keys import CardKeyError, open_bundle, x25519_public_b64
from portal.cards.registry import card_book, create_grant, list_cards
from portal.state import Portal
from tests.cards.sun import sun_field

UID = "04C767F2066180"
URL = "https://qatysu.kz/c"


def _grant(portal: Portal, count: int = 2, ttl_ms: int = 3_600_000, now: int | None = None) -> str:
    at = portal.clock() if now is None else now
    return create_grant(portal.engine, count, ttl_ms, URL, now=at)


def _keys(client: httpx.Client, grant: str, uid: str, station: X25519PrivateKey) -> httpx.Response:
    return client.post(
        "/api/v1/cards/keys",
        json={"uid": uid, "station_key": x25519_public_b64(station)},
        headers={"Authorization": f"Bearer {grant}"},
    )


def _activate(client: httpx.Client, grant: str, uid: str, card: dict[str, str]) -> httpx.Response:
    return client.post(
        "/api/v1/cards/activate",
        json={"uid": uid, "picc": card["picc"], "mac": card["mac"]},
        headers={"Authorization": f"Bearer {grant}"},
    )


def test_personalise_then_activate(
    portal: Portal, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    grant = _grant(portal)
    station = X25519PrivateKey.generate()
    answer = _keys(client, grant, UID, station)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    pinned = public_key_from_b64(client.get("/api/v1/health").json()["portal_public_key"])
    bundle = open_bundle(body, UID, station, pinned)
    assert bundle.url == URL
    assert len({bundle.app_master, bundle.meta_read, bundle.file_read, bundle.key3}) == 4
    with pytest.raises(CardKeyError):
        open_bundle(body, UID, X25519PrivateKey.generate(), pinned)  # another station
    # The station's retry after a lost answer: the same card, no second card used.
    assert _keys(client, grant, UID, station).status_code == 201
    for key in (bundle.meta_read, bundle.file_read, bundle.app_master):
        assert key.hex() not in answer.text.lower()
        assert key.hex() not in caplog.text.lower()
        assert key.hex().upper() not in caplog.text
    # The card, personalised, answers its first read; a forged one is refused.
    uid = bytes.fromhex(UID)
    forged = sun_field(bytes(16), bytes(16), uid, 1)
    assert _activate(client, grant, UID, forged).status_code == 422
    first = sun_field(bundle.meta_read, bundle.file_read, uid, 1)
    done = _activate(client, grant, UID, first)
    assert done.status_code == 200, done.text
    assert done.json() == {"uid": UID, "state": "active", "counter": 1}
    assert _keys(client, grant, UID, station).status_code == 409  # active: no keys again
    [row] = list_cards(portal.engine)
    assert (row["state"], row["key_source"], row["activated_counter"]) == (
        "active",
        "diversified",
        1,
    )
    held = card_book(portal.engine, portal.settings.data_dir).keys[UID]
    assert (held.meta_read, held.file_read, held.floor) == (bundle.meta_read, bundle.file_read, 1)


def test_grant_exhaustion_expiry_and_no_grant(portal: Portal, client: httpx.Client) -> None:
    station = X25519PrivateKey.generate()
    grant = _grant(portal, count=1)
    assert _keys(client, grant, UID, station).status_code == 201
    used_up = _keys(client, grant, "04C767F2066181", station)
    assert (used_up.status_code, used_up.json()["detail"]) == (401, "station grant used up")
    old = _grant(portal, ttl_ms=1000, now=portal.clock() - 10_000)
    assert _keys(client, old, "04C767F2066182", station).status_code == 401
    assert _keys(client, "qcg_unknown", "04C767F2066182", station).status_code == 401
    bare = client.post("/api/v1/cards/keys", json={"uid": UID, "station_key": "x"})
    assert bare.status_code == 401
    # A card issued under one grant is not another grant's to ask for or activate.
    other = _grant(portal)
    assert _keys(client, other, UID, station).status_code == 409
    card = sun_field(bytes(16), bytes(16), bytes.fromhex(UID), 1)
    assert _activate(client, other, UID, card).status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"uid": "04C767F2066180"}',
        b'{"uid": "04c767f2066180", "station_key": "AAAA"}',
        b'{"uid": "04C767F2066180", "station_key": "AAAA"}',
        b'{"uid": 4, "station_key": "AAAA"}',
        b'{"uid": "04C767F2066180", "station_key": "' + base64.b64encode(bytes(32)) + b'"}',
    ],
)
def test_bad_bodies_are_400_and_use_no_card(
    portal: Portal, client: httpx.Client, body: bytes
) -> None:
    grant = _grant(portal, count=1)
    answer = client.post(
        "/api/v1/cards/keys",
        content=body,
        headers={"Authorization": f"Bearer {grant}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    station = X25519PrivateKey.generate()
    assert _keys(client, grant, "04C767F2066189", station).status_code == 201


def test_a_big_body_is_413(portal: Portal, client: httpx.Client) -> None:
    grant = _grant(portal)
    answer = client.post(
        "/api/v1/cards/keys",
        content=b'{"uid": "' + b"A" * 5000 + b'", "station_key": ""}',
        headers={"Authorization": f"Bearer {grant}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 413
