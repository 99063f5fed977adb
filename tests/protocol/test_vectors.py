"""docs/protocol.md's test vectors, checked against the code."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol import (
    REASONS,
    ChainVerifier,
    canonical_bytes,
    parse_json,
    parse_json_lenient,
    public_key_b64,
    public_key_from_b64,
    verify_chain,
    verify_receipt,
)
from tests.protocol.make_vectors import BEGIN, DOC, END, render

BLOCK = re.compile(r"```json\n(.*?)\n```", re.DOTALL)


def doc_vectors() -> list[dict[str, Any]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split(BEGIN, 1)[1].split(END, 1)[0]
    # Parsed strictly: the document itself is in the value set.
    return [parse_json(block) for block in BLOCK.findall(section)]


VECTORS = doc_vectors()
KEYS = next(v for v in VECTORS if v["vector"] == "keys")
DEVICE_KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(KEYS["device_private_key_hex"]))
PORTAL_KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(KEYS["portal_private_key_hex"]))
RECORDS = [v for v in VECTORS if v["vector"] == "record"]
NEGATIVES = [v for v in VECTORS if v["vector"] == "negative"]


def test_document_is_current() -> None:
    assert BEGIN + DOC.read_text(encoding="utf-8").split(BEGIN, 1)[1].split(END, 1)[0] + END == (
        render()
    ), "docs/protocol.md is stale: run python -m tests.protocol.make_vectors --write"


def test_keys() -> None:
    assert public_key_b64(DEVICE_KEY) == KEYS["device_public_key"]
    assert public_key_b64(PORTAL_KEY) == KEYS["portal_public_key"]
    # RFC 8032 test 1 public key, as hex.
    raw = base64.b64decode(KEYS["device_public_key"])
    assert raw.hex() == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"


def check_signed(obj: dict[str, Any], vector: dict[str, Any], key: Ed25519PrivateKey) -> None:
    body = {k: v for k, v in obj.items() if k not in ("hash", "sig")}
    canonical = canonical_bytes(body)
    assert canonical == vector["canonical"].encode("utf-8")
    assert hashlib.sha256(canonical).hexdigest() == vector["hash"] == obj["hash"]
    assert base64.b64encode(key.sign(canonical)).decode() == vector["sig"] == obj["sig"]
    key.public_key().verify(base64.b64decode(vector["sig"]), canonical)


@pytest.mark.parametrize("vector", RECORDS, ids=lambda v: f"seq{v['record']['seq']}")
def test_record_vector(vector: dict[str, Any]) -> None:
    check_signed(vector["record"], vector, DEVICE_KEY)


def test_three_records_chain() -> None:
    records = [v["record"] for v in RECORDS]
    assert [r["seq"] for r in records] == [1, 2, 3]
    public = public_key_from_b64(KEYS["device_public_key"])
    report = verify_chain(records, public, KEYS["device"], start=(0, "0" * 64))
    assert report.ok and report.head_hash == records[-1]["hash"]


def test_receipt_vector() -> None:
    vector = next(v for v in VECTORS if v["vector"] == "receipt")
    check_signed(vector["receipt"], vector, PORTAL_KEY)
    public = public_key_from_b64(KEYS["portal_public_key"])
    assert verify_receipt(vector["receipt"], public, KEYS["device"]) == vector["receipt"]
    assert vector["receipt"]["record_hash"] == RECORDS[-1]["hash"]


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS if v["vector"] == "bridged"], ids=lambda v: v["name"]
)
def test_bridged_vector(vector: dict[str, Any]) -> None:
    public = public_key_from_b64(KEYS["device_public_key"])
    seq, last_hash = vector["start"]
    report = verify_chain(vector["records"], public, KEYS["device"], start=(seq, last_hash))
    assert report.ok, report.failure
    assert report.head_seq == vector["head_seq"]
    assert [[g.first_seq, g.last_seq] for g in report.gaps] == vector["bridged"]
    # Without the declarations the records after a hole fail (gap or link).
    verifier = ChainVerifier(public, KEYS["device"], seq, last_hash)
    failures = [verifier.check_sequence(r) for r in vector["records"] if r["seq"] - 1 in
                {g[1] for g in vector["bridged"]}]  # fmt: skip
    assert failures and all(f is not None and f.reason in ("gap", "link") for f in failures)


def test_one_negative_vector_per_reason_at_least() -> None:
    assert {v["reason"] for v in NEGATIVES} == set(REASONS)


@pytest.mark.parametrize("vector", NEGATIVES, ids=lambda v: v["name"])
def test_negative_vector(vector: dict[str, Any]) -> None:
    if "records_text" in vector:
        records = parse_json_lenient(vector["records_text"])
        # The wire text really is outside the value set for a strict parser.
        with pytest.raises(ValueError):
            parse_json(vector["records_text"])
    else:
        records = vector["records"]
    public = public_key_from_b64(KEYS["device_public_key"])
    seq, last_hash = vector["start"]
    report = verify_chain(records, public, KEYS["device"], start=(seq, last_hash))
    assert report.failure is not None
    assert (report.failure.reason, report.failure.seq) == (vector["reason"], vector["seq"])


def _numbers(value: Any) -> list[int | float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [value]
    if isinstance(value, dict):
        return [n for item in value.values() for n in _numbers(item)]
    if isinstance(value, list):
        return [n for item in value for n in _numbers(item)]
    return []


def test_vectors_survive_a_plain_json_parser_as_other_languages_use() -> None:
    """A JavaScript or Go verifier reads the blocks with its standard parser: every
    number must be an integer that a double holds exactly, and each record's hash
    must follow from the block by the published recipe (sorted keys, no spaces,
    UTF-8), computed here without our canonical encoder."""
    text = DOC.read_text(encoding="utf-8").split(BEGIN, 1)[1].split(END, 1)[0]
    blocks = [json.loads(block) for block in BLOCK.findall(text)]
    numbers = [n for block in blocks for n in _numbers(block)]
    assert numbers and all(isinstance(n, int) and abs(n) <= 2**53 for n in numbers)
    checked = 0
    for block in blocks:
        for record in block.get("records", []) if block["vector"] != "negative" else []:
            body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
            plain = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            assert hashlib.sha256(plain.encode("utf-8")).hexdigest() == record["hash"]
            checked += 1
    assert checked >= 5
