"""Presence records, wire format v1 (docs/protocol.md): shape, hashing and signing."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from agent.protocol.canonical import (
    MAX_SAFE_INT,
    canonical_bytes,
    canonical_bytes_checked,
    check_value,
    value_problem,
)
from agent.protocol.errors import EncodingError, ProtocolError
from agent.protocol.keys import b64decode_strict
from agent.protocol.values import is_hex64, is_int

__all__ = [
    "RECORD_FIELDS",
    "RECORD_TYPES",
    "RECORD_VERSION",
    "ZERO_HASH",
    "build_record",
    "check_record_shape",
    "seal",
    "seal_digest",
    "signature_valid",
]

RECORD_VERSION = 1
ZERO_HASH = "0" * 64
RECORD_TYPES = frozenset(
    {"boot", "badge", "door", "tamper", "heartbeat", "reader", "gap", "config", "alarm"}
)

RECORD_FIELDS: tuple[str, ...] = (
    "v", "device", "seq", "prev", "type", "wall_ms", "synced",
    "boot", "mono_ns", "anchor", "data", "hash", "sig",
)  # fmt: skip
_FIELD_SET = frozenset(RECORD_FIELDS)


def seal_digest(body: Mapping[str, Any], *, checked: bool = False) -> tuple[bytes, str]:
    """Canonical bytes of ``body`` without ``hash``/``sig``, and their SHA-256 hex.

    ``checked=True`` skips the value-set walk for a body already known valid
    (the verifier's hot path); the encoding itself is the same.
    """
    unsigned = {k: v for k, v in body.items() if k not in ("hash", "sig")}
    data = canonical_bytes_checked(unsigned) if checked else canonical_bytes(unsigned)
    return data, hashlib.sha256(data).hexdigest()


def seal(body: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """Return ``body`` with ``hash`` and ``sig`` over its canonical bytes."""
    data, digest = seal_digest(body)
    sealed = dict(body)
    sealed["hash"] = digest
    sealed["sig"] = base64.b64encode(key.sign(data)).decode("ascii")
    return sealed


def signature_valid(data: bytes, sig: str, key: Ed25519PublicKey) -> bool:
    """Check a base64 signature; a malformed one is simply not valid."""
    try:
        raw = b64decode_strict(sig, "sig")
    except ProtocolError:
        return False
    if len(raw) != 64:
        return False
    try:
        key.verify(raw, data)
    except InvalidSignature:
        return False
    return True


def check_record_shape(record: object) -> str | None:
    """Why ``record`` is not a v1 record (reason ``encoding``), or None if it is one.

    Checks the field set, each field's type and the value set; it does not
    check the hash, the signature or the chain.
    """
    if _plainly_valid(record):
        return None
    return _shape_problem(record, walk=True)


def _plainly_valid(r: object) -> bool:
    """True for a record whose every field is plainly right: the verifiers' hot path.

    Only a shortcut: it may pass a valid record on to :func:`_shape_problem`
    (a non-ASCII ``boot``, say), which then says why or finds nothing; it
    never passes a record that :func:`_shape_problem` would refuse.
    """
    if type(r) is not dict or r.keys() != _FIELD_SET:
        return False
    v, seq, wall, mono = r["v"], r["seq"], r["wall_ms"], r["mono_ns"]
    device, kind, boot, anchor, sig = r["device"], r["type"], r["boot"], r["anchor"], r["sig"]
    return (
        type(v) is int
        and v == RECORD_VERSION
        and type(seq) is int
        and 1 <= seq <= MAX_SAFE_INT
        and type(wall) is int
        and -MAX_SAFE_INT <= wall <= MAX_SAFE_INT
        and type(mono) is int
        and 0 <= mono <= MAX_SAFE_INT
        and type(r["synced"]) is bool
        and type(device) is str
        and device.isascii()
        and device != ""
        and type(kind) is str
        and kind.isascii()
        and kind != ""
        and type(boot) is str
        and boot.isascii()
        and is_hex64(r["prev"])
        and is_hex64(r["hash"])
        and (anchor == "" or is_hex64(anchor))
        and type(r["data"]) is dict
        and value_problem(r["data"], 1) is None
        and type(sig) is str
        and len(sig) == 88  # base64 of 64 bytes
        and _strict_b64(sig)
    )


def _strict_b64(text: str) -> bool:
    try:
        b64decode_strict(text, "sig")
    except ProtocolError:
        return False
    return True


def _shape_problem(record: object, *, walk: bool) -> str | None:
    if not isinstance(record, dict):
        return f"record is {type(record).__name__}, not an object"
    fields = set(record)
    missing = [f for f in RECORD_FIELDS if f not in fields]
    if missing:
        return f"missing field {missing[0]!r}"
    extra = sorted(fields.difference(RECORD_FIELDS), key=str)
    if extra:
        return f"unknown field {extra[0]!r}"
    if walk:
        try:
            check_value(record)
        except EncodingError as exc:
            return str(exc)
    problem = _field_problem(record)
    if problem:
        return problem
    if not isinstance(record["sig"], str):
        return "field 'sig' is not a string"
    try:
        if len(b64decode_strict(record["sig"], "sig")) != 64:
            return "field 'sig' is not a 64-byte Ed25519 signature"
    except ProtocolError as exc:
        return str(exc)
    return None


def _field_problem(r: dict[str, Any]) -> str | None:
    if not is_int(r["v"]) or r["v"] != RECORD_VERSION:
        return f"field 'v' must be {RECORD_VERSION}"
    if not isinstance(r["device"], str) or not r["device"]:
        return "field 'device' must be a non-empty string"
    if not is_int(r["seq"]) or r["seq"] < 1:
        return "field 'seq' must be an integer >= 1"
    if not is_hex64(r["prev"]):
        return "field 'prev' must be 64 lowercase hex characters"
    if not isinstance(r["type"], str) or not r["type"]:
        return "field 'type' must be a non-empty string"
    if not is_int(r["wall_ms"]):
        return "field 'wall_ms' must be an integer"
    if not isinstance(r["synced"], bool):
        return "field 'synced' must be true or false"
    if not isinstance(r["boot"], str):
        return "field 'boot' must be a string"
    if not is_int(r["mono_ns"]) or r["mono_ns"] < 0:
        return "field 'mono_ns' must be an integer >= 0"
    if not (r["anchor"] == "" or is_hex64(r["anchor"])):
        return "field 'anchor' must be \"\" or 64 lowercase hex characters"
    if not isinstance(r["data"], dict):
        return "field 'data' must be an object"
    if not is_hex64(r["hash"]):
        return "field 'hash' must be 64 lowercase hex characters"
    return None


def build_record(
    key: Ed25519PrivateKey,
    *,
    device: str,
    seq: int,
    prev: str,
    type: str,
    wall_ms: int,
    synced: bool,
    boot: str,
    mono_ns: int,
    anchor: str,
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """Build and sign one record; raises :class:`EncodingError` for a value outside the set."""
    body: dict[str, Any] = {
        "v": RECORD_VERSION,
        "device": device,
        "seq": seq,
        "prev": prev,
        "type": type,
        "wall_ms": wall_ms,
        "synced": synced,
        "boot": boot,
        "mono_ns": mono_ns,
        "anchor": anchor,
        "data": dict(data),
    }
    record = seal(body, key)  # seal walks the value set once
    problem = _shape_problem(record, walk=False)
    if problem:
        raise EncodingError(problem)
    return record
