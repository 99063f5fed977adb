"""Portal receipts (docs/protocol.md, Receipts): signed like records, acted on only when pinned."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from agent.protocol.canonical import check_value
from agent.protocol.errors import EncodingError, ReceiptError
from agent.protocol.records import seal, seal_digest, signature_valid
from agent.protocol.values import is_hex64, is_int

__all__ = ["RECEIPT_FIELDS", "build_receipt", "verify_receipt"]

RECEIPT_FIELDS = ("v", "device", "seq", "record_hash", "server_ms", "hash", "sig")


def build_receipt(
    key: Ed25519PrivateKey, *, device: str, seq: int, record_hash: str, server_ms: int
) -> dict[str, Any]:
    """Sign a receipt for the head ``(seq, record_hash)`` of ``device``'s stored chain.

    Raises :class:`EncodingError` for a field outside the v1 receipt format.
    """
    body = {
        "v": 1,
        "device": device,
        "seq": seq,
        "record_hash": record_hash,
        "server_ms": server_ms,
    }
    receipt = seal(body, key)
    problem = _receipt_problem(receipt)
    if problem:
        raise EncodingError(problem)
    return receipt


def _receipt_problem(receipt: object) -> str | None:
    if not isinstance(receipt, dict):
        return "receipt is not an object"
    if set(receipt) != set(RECEIPT_FIELDS):
        odd = sorted(set(receipt).symmetric_difference(RECEIPT_FIELDS), key=str)
        return f"receipt fields differ from v1 at {odd[0]!r}"
    try:
        check_value(receipt)
    except EncodingError as exc:
        return f"receipt encoding: {exc}"
    if not (is_int(receipt["v"]) and receipt["v"] == 1):
        return "receipt 'v' must be 1"
    if not isinstance(receipt["device"], str) or not receipt["device"]:
        return "receipt 'device' must be a non-empty string"
    if not is_int(receipt["seq"]) or receipt["seq"] < 0:
        return "receipt 'seq' must be an integer >= 0"
    if not is_int(receipt["server_ms"]):
        return "receipt 'server_ms' must be an integer"
    if not (is_hex64(receipt["record_hash"]) and is_hex64(receipt["hash"])):
        return "receipt hashes must be 64 lowercase hex characters"
    if not isinstance(receipt["sig"], str):
        return "receipt 'sig' must be a string"
    return None


def verify_receipt(
    receipt: object, public_key: Ed25519PublicKey, device: str | None = None
) -> dict[str, Any]:
    """Return ``receipt`` if it is well formed, for ``device`` and signed by ``public_key``.

    Raises :class:`ReceiptError` otherwise. Whether the receipt's hash is one
    the device knows is the buffer's question, not this function's.
    """
    problem = _receipt_problem(receipt)
    if problem:
        raise ReceiptError(problem)
    assert isinstance(receipt, dict)
    if device is not None and receipt["device"] != device:
        raise ReceiptError(f"receipt is for device {receipt['device']!r}, not {device!r}")
    data, digest = seal_digest(receipt, checked=True)
    if digest != receipt["hash"]:
        raise ReceiptError("receipt hash does not match its canonical bytes")
    if not signature_valid(data, receipt["sig"], public_key):
        raise ReceiptError("receipt signature does not verify with the pinned portal key")
    return receipt
