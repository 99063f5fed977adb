"""``cards issue``, ``cards revoke`` and ``center set --require-card-auth`` on the CLI."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select, update

from agent.protocol import public_key_b64
from agent.protocol.card_keys import station_authorization, x25519_public_b64
from portal.cards.registry import (
    StationRequest,
    card_book,
    enroll_station,
    list_cards,
    station_keys,
)
from portal.cli import main
from portal.db.schema import card_grants, cards, centers
from portal.keys import load_or_create_card_master
from portal.registry import token_hash
from portal.state import Portal
from tests.cards.test_import import GOOD


def _base(portal: Portal) -> list[str]:
    base = ["--data-dir", str(portal.settings.data_dir)]
    return [*base, "--db", portal.settings.db_url] if portal.settings.db_url else base


def test_issue_prints_a_grant_once_stored_hashed(
    portal: Portal, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*_base(portal), "cards", "issue", "--count", "3", "--ttl", "2h"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("qcg_")
    with portal.engine.connect() as conn:
        row = conn.execute(select(card_grants)).one()
    grant = row._mapping
    assert (grant["token_hash"], grant["count"], grant["used"]) == (token_hash(token), 3, 0)
    assert row.expires_ms - row.created_ms == 2 * 3_600_000
    assert main([*_base(portal), "cards", "issue", "--count", "0"]) == 2
    assert main([*_base(portal), "cards", "issue", "--count", "1", "--url", "http://x"]) == 2


def test_revoke_and_replace(portal: Portal) -> None:
    csv = portal.settings.data_dir.parent / "cards.csv"
    csv.write_bytes(GOOD)
    assert main([*_base(portal), "cards", "import", str(csv)]) == 0
    assert main([*_base(portal), "cards", "revoke", "04c767f2066180"]) == 0
    revoke = [*_base(portal), "cards", "revoke", "04C767F2066181", "--replaced-by"]
    assert main([*revoke, "04AA"]) == 2  # the new card must be registered first
    assert main([*revoke, "04C767F2066180"]) == 2  # ... and in use
    assert main([*revoke, "04C767F2066181"]) == 2  # ... and another card
    assert main([*_base(portal), "cards", "revoke", "04C767F2066180"]) == 1  # already
    assert main([*_base(portal), "cards", "revoke", "04C767F20661FF"]) == 2  # unknown
    states = {r["uid"]: (r["state"], r["replaced_by"]) for r in list_cards(portal.engine)}
    assert states == {"04C767F2066180": ("revoked", None), "04C767F2066181": ("active", None)}
    book = card_book(portal.engine, portal.settings.data_dir)
    assert book.keys["04C767F2066180"].until_ms is not None
    assert book.keys["04C767F2066181"].until_ms is None


def test_replace_a_lost_card(portal: Portal) -> None:
    csv = portal.settings.data_dir.parent / "cards.csv"
    csv.write_bytes(GOOD)
    assert main([*_base(portal), "cards", "import", str(csv)]) == 0
    revoke = [*_base(portal), "cards", "revoke", "04c767f2066180", "--replaced-by"]
    assert main([*revoke, "04c767f2066181"]) == 0
    states = {r["uid"]: (r["state"], r["replaced_by"]) for r in list_cards(portal.engine)}
    assert states == {
        "04C767F2066180": ("replaced", "04C767F2066181"),
        "04C767F2066181": ("active", None),
    }


def test_stations_list_and_end(portal: Portal, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*_base(portal), "cards", "issue", "--count", "3"]) == 0
    token = capsys.readouterr().out.strip()
    key = public_key_b64(Ed25519PrivateKey.generate())
    enroll_station(portal.engine, token, key, now=portal.clock())
    assert main([*_base(portal), "cards", "stations"]) == 0
    short = token_hash(token)[:12]
    assert capsys.readouterr().out == f"{short}\t0/3\tlive\t{key}\n"
    assert main([*_base(portal), "cards", "end", short.upper()]) == 0
    assert capsys.readouterr().out == f"station {short} ended\n"
    assert main([*_base(portal), "cards", "stations", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["ended_ms"] is not None and row["station_key"] == key
    assert main([*_base(portal), "cards", "end", short]) == 1  # already ended
    assert main([*_base(portal), "cards", "end", "xyz"]) == 2
    assert main([*_base(portal), "cards", "end", "0" * 12]) == 2


def test_end_a_stolen_station_and_revoke_what_it_made(
    portal: Portal, capsys: pytest.CaptureFixture[str]
) -> None:

    assert main([*_base(portal), "cards", "issue", "--count", "3"]) == 0
    token = capsys.readouterr().out.strip()
    key = Ed25519PrivateKey.generate()
    enroll_station(portal.engine, token, public_key_b64(key), now=portal.clock())
    master = load_or_create_card_master(portal.settings.data_dir)
    sealing = x25519_public_b64(X25519PrivateKey.generate())
    for n, (uid, at) in enumerate([("04000000000001", -5 * 3_600_000), ("04000000000002", 0)]):
        body = f"{uid}".encode()
        when = portal.clock() + at + n
        auth = station_authorization(key, "POST", "/api/v1/cards/keys", when, body)
        request = StationRequest(auth, "POST", "/api/v1/cards/keys", body)
        station_keys(
            portal.engine, master, portal.key, request, uid, sealing, False, now=portal.clock() + at
        )
    short = token_hash(token)[:12]
    assert main([*_base(portal), "cards", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(f"issued\tdiversified\t\t{short}")
    # The station went missing two hours ago: what it made since then is revoked.
    assert main([*_base(portal), "cards", "end", short, "--revoke-cards-since", "2h"]) == 0
    assert capsys.readouterr().out == f"station {short} ended; 1 cards revoked\n"
    states = {r["uid"]: r["state"] for r in list_cards(portal.engine)}
    assert states == {"04000000000001": "issued", "04000000000002": "revoked"}


def test_center_set_require_card_auth(portal: Portal) -> None:
    assert main([*_base(portal), "center", "set", "c1", "--require-card-auth", "on"]) == 0
    assert card_book(portal.engine, portal.settings.data_dir).require_auth == {"c1"}
    assert main([*_base(portal), "center", "set", "c1", "--require-card-auth", "off"]) == 0
    with portal.engine.connect() as conn:
        assert conn.execute(select(centers.c.require_card_auth)).scalar_one() is False
    assert main([*_base(portal), "center", "set", "nope", "--require-card-auth", "on"]) == 2


def test_revoking_since_a_theft_takes_cards_activated_since_too(
    portal: Portal, capsys: pytest.CaptureFixture[str]
) -> None:
    """A card issued before the theft but finished after it (the thief fetched its
    keys again) is revoked with the rest."""
    assert main([*_base(portal), "cards", "issue", "--count", "3"]) == 0
    token = capsys.readouterr().out.strip()
    key = Ed25519PrivateKey.generate()
    enroll_station(portal.engine, token, public_key_b64(key), now=portal.clock())
    master = load_or_create_card_master(portal.settings.data_dir)
    sealing = x25519_public_b64(X25519PrivateKey.generate())
    for n, (uid, at) in enumerate([("04000000000011", -5 * 3_600_000), ("04000000000012", 0)]):
        body = uid.encode()
        auth = station_authorization(
            key, "POST", "/api/v1/cards/keys", portal.clock() + at + n, body
        )
        request = StationRequest(auth, "POST", "/api/v1/cards/keys", body)
        station_keys(
            portal.engine, master, portal.key, request, uid, sealing, False, now=portal.clock() + at
        )
    with portal.engine.begin() as conn:  # the old card activated an hour ago, by the thief
        conn.execute(
            update(cards)
            .where(cards.c.uid == "04000000000011")
            .values(state="active", activated_ms=portal.clock() - 3_600_000)
        )
    short = token_hash(token)[:12]
    assert main([*_base(portal), "cards", "end", short, "--revoke-cards-since", "2h"]) == 0
    assert capsys.readouterr().out == f"station {short} ended; 2 cards revoked\n"
    assert {r["state"] for r in list_cards(portal.engine)} == {"revoked"}
