"""Nothing a verifier is given may make it raise (docs/protocol.md): arbitrary
JSON values, near-miss records and arbitrary bytes."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.protocol import (
    REASONS,
    ChainVerifier,
    build_receipt,
    make_bundle,
    parse_json,
    parse_json_lenient,
    public_key_b64,
    verify_bundle,
    verify_chain,
    verify_receipt,
)
from agent.protocol.errors import EncodingError, ReceiptError
from tests.protocol.chains import DEVICE, KEY, make_chain

PUB = KEY.public_key()
fuzz = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Wider than the value set on purpose: floats, NaN, huge ints, surrogates, any keys.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=10)
wild_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | any_text
wild_values: st.SearchStrategy[Any] = st.recursive(
    wild_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=15,
)
CHAIN = make_chain([("badge", {"uid": "04A1"}), ("door", {"state": "open"}), ("gap", {})])


def near_miss(draw: st.DrawFn) -> Any:
    """A real record with one field (or one data entry) replaced by anything."""
    record = copy.deepcopy(draw(st.sampled_from(CHAIN)))
    field = draw(st.sampled_from([*record, "data.x", "extra"]))
    value = draw(wild_values)
    if field == "data.x":
        record["data"]["x"] = value
    elif field == "extra":
        record[draw(any_text)] = value
    else:
        record[field] = value
    return record


records_or_junk = st.one_of(wild_values, st.composite(lambda draw: near_miss(draw))())


def assert_failure_shape(failure: Any) -> None:
    assert failure is None or (
        failure.reason in REASONS and (failure.seq is None or isinstance(failure.seq, int))
    )
    str(failure)


@fuzz
@given(st.lists(records_or_junk, max_size=5))
def test_verifier_feed_never_raises(items: list[Any]) -> None:
    verifier = ChainVerifier(PUB, DEVICE)
    for item in items:
        assert_failure_shape(verifier.feed(item))


@fuzz
@given(records_or_junk, st.booleans())
def test_verify_chain_never_raises(records: Any, signatures: bool) -> None:
    report = verify_chain(records, PUB, DEVICE, signatures=signatures)
    assert_failure_shape(report.failure)
    report = verify_chain([*CHAIN[:2], records], PUB, DEVICE)
    assert_failure_shape(report.failure)


@fuzz
@given(wild_values, st.lists(records_or_junk, max_size=3))
def test_verify_bundle_never_raises(bundle: Any, records: list[Any]) -> None:
    assert_failure_shape(verify_bundle(bundle).failure)
    assembled = make_bundle(DEVICE, public_key_b64(KEY), records)
    report = verify_bundle(assembled)
    assert_failure_shape(report.failure)
    assert report.exit_code in (0, 1, 3)
    if isinstance(bundle, str):
        assert_failure_shape(verify_bundle(assembled, public_key=bundle).failure)


@fuzz
@given(st.binary(max_size=200) | any_text)
def test_parse_json_raises_only_encoding_error(data: bytes | str) -> None:
    with contextlib.suppress(EncodingError):
        parse_json(data)
    try:
        value = parse_json_lenient(data)
    except EncodingError:
        return
    # Whatever the lenient parse keeps, the verifiers take without raising.
    assert_failure_shape(verify_chain([value], PUB, DEVICE).failure)
    assert_failure_shape(verify_bundle(value).failure)


@fuzz
@given(st.lists(records_or_junk, min_size=1, max_size=3))
def test_wire_text_of_records_through_the_lenient_parser(records: list[Any]) -> None:
    try:
        text = json.dumps(records, allow_nan=True)
    except (ValueError, TypeError):
        return
    try:
        parsed = parse_json_lenient(text.encode("utf-8", "surrogatepass"))
    except EncodingError:
        return
    assert_failure_shape(verify_chain(parsed, PUB, DEVICE).failure)


@fuzz
@given(wild_values)
def test_parse_json_of_json_text_raises_only_encoding_error(value: Any) -> None:
    try:
        text = json.dumps(value)
    except (ValueError, TypeError):
        return
    with contextlib.suppress(EncodingError):
        parse_json(text.encode("utf-8", "surrogatepass"))


@fuzz
@given(st.one_of(wild_values, st.builds(dict)), st.sampled_from([None, DEVICE]))
def test_verify_receipt_raises_only_receipt_error(value: Any, device: str | None) -> None:
    receipt = build_receipt(KEY, device=DEVICE, seq=3, record_hash="ab" * 32, server_ms=1)
    for candidate in (value, {**receipt, "seq": value}, {**receipt, "server_ms": value}):
        with contextlib.suppress(ReceiptError):
            verify_receipt(candidate, PUB, device)
