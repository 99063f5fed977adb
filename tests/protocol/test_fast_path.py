"""The verifiers' shortcuts decide exactly as the full checks they stand in for."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.protocol import check_record_shape, parse_json_lenient
from agent.protocol.canonical import DuplicateKeys, Invalid
from agent.protocol.records import _shape_problem
from tests.protocol.chains import make_chain
from tests.protocol.test_chain_properties import BAD_TYPES
from tests.protocol.test_fuzz import near_miss, wild_values

fuzz = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values a plain field check might let through but the value set refuses.
AWKWARD: list[Any] = [
    2**53, -(2**53), 2**53 - 1, -(2**53) + 1, "\udc00", "é", "ü" * 3, {"é": 1}, 1.0, True,
    Invalid("x"), DuplicateKeys({"a": 1}), {"a": [[[[]]]]}, "", "0" * 64, "a" * 64,
]  # fmt: skip


def _same_answer(record: Any) -> None:
    assert check_record_shape(record) == _shape_problem(record, walk=True)


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, vs in BAD_TYPES.items() for v in vs])
def test_bad_field_values_get_the_full_check_s_answer(field: str, value: Any) -> None:
    record = make_chain([("badge", {"uid": "04A1"})])[0]
    record[field] = value
    assert check_record_shape(record) is not None
    _same_answer(record)


@pytest.mark.parametrize("value", AWKWARD, ids=repr)
@pytest.mark.parametrize("field", ["device", "type", "boot", "wall_ms", "mono_ns", "seq", "data"])
def test_awkward_values_in_any_field(field: str, value: Any) -> None:
    record = make_chain([("badge", {"uid": "04A1"})])[0]
    record[field] = value
    _same_answer(record)
    record["data"] = {"nested": {"deep": value}}
    _same_answer(record)


def test_non_canonical_base64_padding_is_refused_by_both() -> None:
    record = make_chain([("badge", {"uid": "04A1"})])[0]
    sig = record["sig"]
    # The last character before "==" carries 4 unused bits: set one.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    record["sig"] = sig[:-3] + alphabet[alphabet.index(sig[-3]) | 1] + "=="
    assert base64.b64decode(record["sig"]) == base64.b64decode(sig)
    assert check_record_shape(record) is not None
    _same_answer(record)


@fuzz
@given(st.one_of(wild_values, st.composite(lambda draw: near_miss(draw))()))
def test_generated_near_records_get_the_full_check_s_answer(value: Any) -> None:
    _same_answer(value)


def test_an_integer_over_python_s_digit_limit_fails_its_record_only() -> None:
    text = '[{"seq": 1}, {"seq": ' + "9" * 5000 + "}, 9007199254740993]"
    parsed = parse_json_lenient(text)
    assert parsed[0] == {"seq": 1}
    assert isinstance(parsed[1]["seq"], Invalid)
    assert isinstance(parsed[2], Invalid)  # parsed the bounded way too


def test_the_lenient_parse_names_the_first_repeated_key() -> None:
    parsed = parse_json_lenient('{"a": 1, "b": 2, "b": 3, "a": 4}')
    assert isinstance(parsed, DuplicateKeys)
    assert (parsed.duplicate, dict(parsed)) == ("b", {"a": 4, "b": 3})
    assert type(parse_json_lenient('{"a": 1, "b": 2}')) is dict


def test_valid_records_take_the_shortcut() -> None:
    from agent.protocol.records import _plainly_valid

    items = [("badge", {"uid": "04A1", "readers": {"a": "ok"}}), ("door", {"state": "open"})]
    assert all(_plainly_valid(r) for r in make_chain(items))
