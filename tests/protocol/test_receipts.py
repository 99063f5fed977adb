"""Receipts (docs/protocol.md, Receipts): built and verified by the same code."""

from __future__ import annotations

import base64

import pytest

from agent.protocol import ZERO_HASH, build_receipt, seal, verify_receipt
from agent.protocol.errors import EncodingError, ReceiptError
from tests.protocol.chains import DEVICE, KEY, OTHER_KEY

PORTAL = KEY  # the portal's key in these tests


def receipt(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "device": DEVICE, "seq": 12, "record_hash": "ab" * 32, "server_ms": 1_700_000_000_000,
    }  # fmt: skip
    fields.update(overrides)
    return build_receipt(PORTAL, **fields)  # type: ignore[arg-type]


def test_receipt_round_trip() -> None:
    r = receipt()
    assert set(r) == {"v", "device", "seq", "record_hash", "server_ms", "hash", "sig"}
    assert verify_receipt(r, PORTAL.public_key(), DEVICE) is r
    assert verify_receipt(r, PORTAL.public_key()) is r
    empty = receipt(seq=0, record_hash=ZERO_HASH)
    assert verify_receipt(empty, PORTAL.public_key(), DEVICE)["seq"] == 0


def test_wrong_key() -> None:
    with pytest.raises(ReceiptError, match="signature"):
        verify_receipt(receipt(), OTHER_KEY.public_key(), DEVICE)


def test_wrong_device() -> None:
    with pytest.raises(ReceiptError, match="dev-7"):
        verify_receipt(receipt(), PORTAL.public_key(), "dev-8")


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", 13), ("record_hash", "cd" * 32), ("server_ms", 1), ("device", "dev-8")],
)
def test_tampered_field(field: str, value: object) -> None:
    r = {**receipt(), field: value}
    with pytest.raises(ReceiptError, match="hash"):
        verify_receipt(r, PORTAL.public_key())
    # Re-hashed but not re-signed by the portal: the signature fails.
    resealed = seal({k: v for k, v in r.items() if k not in ("hash", "sig")}, OTHER_KEY)
    with pytest.raises(ReceiptError, match="signature"):
        verify_receipt(resealed, PORTAL.public_key())


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2}, {"seq": -1}, {"seq": "12"}, {"server_ms": 1.5}, {"record_hash": "AB" * 32},
        {"sig": "not base64"}, {"sig": 5}, {"extra": 1}, {"device": ""},
    ],
    ids=repr,
)  # fmt: skip
def test_malformed_receipt(change: dict[str, object]) -> None:
    with pytest.raises(ReceiptError):
        verify_receipt({**receipt(), **change}, PORTAL.public_key())


def test_receipt_missing_field_and_non_object() -> None:
    r = receipt()
    del r["server_ms"]
    for bad in (r, [], "receipt", None):
        with pytest.raises(ReceiptError):
            verify_receipt(bad, PORTAL.public_key())


def test_build_refuses_values_outside_the_format() -> None:
    for overrides in ({"record_hash": "xyz"}, {"seq": -1}, {"server_ms": 2**60}):
        with pytest.raises(EncodingError):
            receipt(**overrides)


def test_signature_is_over_the_canonical_bytes() -> None:
    r = receipt()
    body = (
        '{"device":"dev-7","record_hash":"' + "ab" * 32
        + '","seq":12,"server_ms":1700000000000,"v":1}'
    ).encode()  # fmt: skip
    PORTAL.public_key().verify(base64.b64decode(r["sig"]), body)  # type: ignore[arg-type]
