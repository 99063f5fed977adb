"""Canonical bytes are exactly docs/protocol.md's Python expression; the strict
parser refuses everything outside the value set with EncodingError."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.protocol import (
    MAX_SAFE_INT,
    ZERO_HASH,
    ChainVerifier,
    canonical_bytes,
    check_record_shape,
    parse_json,
)
from agent.protocol.canonical import MAX_DEPTH
from agent.protocol.errors import EncodingError
from tests.protocol.chains import DEVICE, KEY, json_values, make_chain

fast = settings(max_examples=100, deadline=None)


def spec_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@fast
@given(json_values)
def test_canonical_bytes_are_the_spec_expression_and_round_trip(value: Any) -> None:
    data = canonical_bytes(value)
    assert data == spec_bytes(value)
    assert parse_json(data) == value
    assert canonical_bytes(parse_json(data)) == data


@fast
@given(st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=6), json_values))
def test_non_canonical_text_parses_to_the_same_canonical_bytes(value: dict[str, Any]) -> None:
    # The wire need not be canonical: whitespace, key order and \u escapes differ.
    loose = json.dumps(dict(reversed(list(value.items()))), indent=2, ensure_ascii=True)
    assert canonical_bytes(parse_json(loose)) == spec_bytes(value)


def test_escapes_are_only_what_json_requires() -> None:
    value = {"b": "é\u2028\x7f", "a": '\n\t\x01"\\/', "c": "😀"}
    assert canonical_bytes(value) == (
        '{"a":"\\n\\t\\u0001\\"\\\\/","b":"é\u2028\x7f","c":"😀"}'.encode()
    )


def test_integer_bounds() -> None:
    assert parse_json(str(MAX_SAFE_INT)) == MAX_SAFE_INT
    assert parse_json(str(-MAX_SAFE_INT)) == -MAX_SAFE_INT
    for text in (str(MAX_SAFE_INT + 1), str(-MAX_SAFE_INT - 1), "1" * 5000):
        with pytest.raises(EncodingError):
            parse_json(text)
    with pytest.raises(EncodingError):
        canonical_bytes({"n": 2**53})


MALFORMED_TEXT = {
    "fraction": b'{"a":1.0}',
    "exponent": b'{"a":1e2}',
    "exponent_upper": b'{"a":1E2}',
    "nan": b'{"a":NaN}',
    "infinity": b'{"a":-Infinity}',
    "overlong_int": b'{"a":12345678901234567890}',
    "duplicate_key": b'{"a":1,"a":1}',
    "nested_duplicate": b'{"d":{"k":1,"k":2}}',
    "non_ascii_key": '{"ключ":1}'.encode(),
    "lone_surrogate": b'{"a":"\\ud800"}',
    "not_utf8": b'{"a":"\xff"}',
    "not_json": b"hello",
    "trailing": b'{"a":1} x',
    "truncated": b'{"a":[1,2',
    "bom": b'\xef\xbb\xbf{"a":1}',
    "empty": b"",
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "too_deep": b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
}


@pytest.mark.parametrize("text", MALFORMED_TEXT.values(), ids=MALFORMED_TEXT.keys())
def test_strict_parser_rejects(text: bytes) -> None:
    with pytest.raises(EncodingError):
        parse_json(text)


def test_max_depth_is_allowed() -> None:
    text = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert canonical_bytes(parse_json(text)) == text


@pytest.mark.parametrize(
    "value",
    [1.0, math.nan, math.inf, 2**53, -(2**53), "\udc00", {"é": 1}, {1: 2}, (1, 2), b"x",
     {"a": {"b": [1, {"c": 0.5}]}}],
    ids=repr,
)  # fmt: skip
def test_python_values_outside_the_set(value: Any) -> None:
    with pytest.raises(EncodingError):
        canonical_bytes(value)
    # Put in a record, the verifier says "encoding" at that record's seq.
    record = make_chain([("badge", {})])[0]
    record["data"] = {"x": value}
    assert check_record_shape(record) is not None
    failure = ChainVerifier(KEY.public_key(), DEVICE).check(record)
    assert failure is not None and (failure.seq, failure.reason) == (1, "encoding")


def test_cyclic_value_is_encoding_not_recursion() -> None:
    loop: list[Any] = []
    loop.append(loop)
    record = make_chain([("badge", {})])[0]
    record["data"] = {"loop": loop}
    failure = ChainVerifier(KEY.public_key(), DEVICE).check(record)
    assert failure is not None and failure.reason == "encoding"


@pytest.mark.parametrize("field", ["hash", "sig", "extra"])
def test_missing_or_extra_top_level_field(field: str) -> None:
    record = make_chain([("badge", {})])[0]
    if field == "extra":
        record["note"] = "hi"
    else:
        del record[field]
    failure = ChainVerifier(KEY.public_key(), DEVICE, 0, ZERO_HASH).check(record)
    assert failure is not None and (failure.seq, failure.reason) == (1, "encoding")


@pytest.mark.parametrize(
    "sig_change",
    [
        lambda s: s[:-2],  # padding dropped
        lambda s: s[:-3] + "B==",  # non-zero padding bits: same bytes, other text
        lambda s: s[:40] + "\n" + s[40:],  # whitespace
        lambda s: s.replace("+", "-").replace("/", "_") if ("+" in s or "/" in s) else "*" + s,
        lambda s: s[:-4] + "éé==",
    ],
)
def test_bad_base64_signature_is_encoding(sig_change: Any) -> None:
    record = make_chain([("badge", {})])[0]
    record["sig"] = sig_change(record["sig"])
    failure = ChainVerifier(KEY.public_key(), DEVICE).check(record)
    assert failure is not None and (failure.seq, failure.reason) == (1, "encoding")
