"""Sealing the card key bundle to a station: opens only with its key, signed by the portal."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.protocol.canonical import canonical_bytes, parse_json
from agent.protocol.card_keys import (
    CardKeyBundle,
    CardKeyError,
    open_bundle,
    seal_bundle,
    signed_fields,
    x25519_public_b64,
)

UID = "04C767F2066180"


def _bundle() -> CardKeyBundle:
    k1, k2, k3, k4, k5 = (bytes([n]) * 16 for n in range(1, 6))
    return CardKeyBundle(k1, k2, k3, k4, k5, url="https://qatysu.kz/c")


def test_round_trip_and_wire_shape() -> None:
    station = X25519PrivateKey.generate()
    portal = Ed25519PrivateKey.generate()
    response = seal_bundle(_bundle(), UID, x25519_public_b64(station), portal)
    assert set(response) == {"uid", "portal_key", "sealed", "signature"}
    assert response["uid"] == UID
    assert len(base64.b64decode(response["portal_key"])) == 32
    opened = open_bundle(response, UID, station, portal.public_key())
    assert opened == _bundle()
    assert "01010101" not in repr(opened)


def test_plaintext_and_kdf_follow_the_contract() -> None:
    """Decrypt by hand from the contract's words, not through open_bundle."""
    station = X25519PrivateKey.generate()
    portal = Ed25519PrivateKey.generate()
    response = seal_bundle(_bundle(), UID, x25519_public_b64(station), portal)
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    ephemeral = X25519PublicKey.from_public_bytes(base64.b64decode(response["portal_key"]))
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"",
        info=b"qatysu card keys " + bytes.fromhex(UID),
    ).derive(station.exchange(ephemeral))
    sealed = base64.b64decode(response["sealed"])
    plain = AESGCM(key).decrypt(sealed[:12], sealed[12:], None)
    value = parse_json(plain)
    assert canonical_bytes(value) == plain
    assert value == {
        "app_master": "01" * 16,
        "meta_read": "02" * 16,
        "file_read": "03" * 16,
        "key3": "04" * 16,
        "key4": "05" * 16,
        "url": "https://qatysu.kz/c",
    }
    portal.public_key().verify(
        base64.b64decode(response["signature"]),
        canonical_bytes({k: response[k] for k in ("uid", "portal_key", "sealed")}),
    )
    assert signed_fields(response) == canonical_bytes(
        {k: response[k] for k in ("uid", "portal_key", "sealed")}
    )


def test_other_station_cannot_open() -> None:
    station, other = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    portal = Ed25519PrivateKey.generate()
    response = seal_bundle(_bundle(), UID, x25519_public_b64(station), portal)
    with pytest.raises(CardKeyError, match="does not open"):
        open_bundle(response, UID, other, portal.public_key())


def test_signature_pins_the_portal_and_every_field() -> None:
    station = X25519PrivateKey.generate()
    portal, impostor = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    response = seal_bundle(_bundle(), UID, x25519_public_b64(station), portal)
    with pytest.raises(CardKeyError, match="signature"):
        open_bundle(response, UID, station, impostor.public_key())
    forged = seal_bundle(_bundle(), UID, x25519_public_b64(station), impostor)
    with pytest.raises(CardKeyError, match="signature"):
        open_bundle(forged, UID, station, portal.public_key())
    for field in ("uid", "portal_key", "sealed"):
        tampered = dict(response)
        tampered[field] = (
            "04C767F2066181"
            if field == "uid"
            else base64.b64encode(os.urandom(len(base64.b64decode(response[field])))).decode()
        )
        with pytest.raises(CardKeyError, match="signature"):
            open_bundle(tampered, UID, station, portal.public_key())


def test_bundle_for_another_uid_is_refused() -> None:
    station = X25519PrivateKey.generate()
    portal = Ed25519PrivateKey.generate()
    response = seal_bundle(_bundle(), "04C767F2066181", x25519_public_b64(station), portal)
    with pytest.raises(CardKeyError, match="not 04C767F2066180"):
        open_bundle(response, UID, station, portal.public_key())


@pytest.mark.parametrize(
    ("uid", "station_key"),
    [
        ("04c767f2066180", None),
        ("04C767F20661", None),
        (UID, "not base64"),
        (UID, base64.b64encode(bytes(31)).decode()),
        (UID, base64.b64encode(bytes(32)).decode()),  # low-order point
    ],
)
def test_seal_refuses_bad_requests(uid: str, station_key: str | None) -> None:
    key = station_key or x25519_public_b64(X25519PrivateKey.generate())
    with pytest.raises(CardKeyError):
        seal_bundle(_bundle(), uid, key, Ed25519PrivateKey.generate())


def test_malformed_responses() -> None:
    station = X25519PrivateKey.generate()
    portal = Ed25519PrivateKey.generate()
    bads: list[object] = [
        None,
        [],
        {"uid": UID},
        {**seal_bundle(_bundle(), UID, x25519_public_b64(station), portal), "x": "1"},
    ]
    for bad in bads:
        with pytest.raises(CardKeyError):
            open_bundle(bad, UID, station, portal.public_key())


def test_bundle_validates_its_keys() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        CardKeyBundle(bytes(15), bytes(16), bytes(16), bytes(16), bytes(16), url="https://x")
    with pytest.raises(ValueError, match="https"):
        CardKeyBundle(bytes(16), bytes(16), bytes(16), bytes(16), bytes(16), url="http://x")
    with pytest.raises(CardKeyError, match="meta_read"):
        CardKeyBundle.from_plaintext(
            canonical_bytes(
                {
                    "app_master": "00" * 16,
                    "meta_read": "00" * 15,
                    "file_read": "00" * 16,
                    "key3": "00" * 16,
                    "key4": "00" * 16,
                    "url": "https://x",
                }
            )
        )
