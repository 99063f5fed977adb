"""Generated chains: untouched ones verify; every kind of tampering is caught
at the right record with the right reason (docs/protocol.md, check order)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agent.protocol import (
    ZERO_HASH,
    ChainVerifier,
    canonical_bytes,
    parse_json,
    verify_chain,
)
from agent.protocol.errors import EncodingError
from tests.protocol.chains import (
    DEVICE,
    KEY,
    OTHER_KEY,
    chain_items,
    data_objects,
    hex64,
    make_chain,
    resign,
)

PUB = KEY.public_key()
START = (0, ZERO_HASH)
fast = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def failure_of(records: list[Any], **kwargs: Any) -> tuple[int | None, str, int]:
    report = verify_chain(records, PUB, DEVICE, **kwargs)
    assert report.failure is not None, "tampering went unnoticed"
    return report.failure.seq, report.failure.reason, report.checked


@fast
@given(chain_items)
def test_untouched_chain_verifies(items: list[Any]) -> None:
    records = make_chain(items)
    for kwargs in ({}, {"start": START}, {"signatures": False}):
        report = verify_chain(records, PUB, DEVICE, **kwargs)  # type: ignore[arg-type]
        assert report.ok, report.failure
        assert (report.head_seq, report.head_hash) == (len(records), records[-1]["hash"])
        assert report.checked == len(records) and report.gaps == ()


@fast
@given(chain_items, st.integers(2, 50), hex64.filter(lambda h: h != ZERO_HASH))
def test_chain_starting_mid_device_verifies_from_its_own_prev(
    items: list[Any], first_seq: int, prev: str
) -> None:
    records = make_chain(items, first_seq=first_seq, prev=prev)
    assert verify_chain(records, PUB, DEVICE).ok
    # With the verifier's own idea of the last hash the same chain is unlinked.
    seq, reason, _ = failure_of(records, start=(first_seq - 1, ZERO_HASH))
    assert (seq, reason) == (first_seq, "link")


def _other_value(field: str, old: Any, draw: st.DrawFn) -> tuple[Any, str]:
    """A changed value for ``field`` and the reason the verifier must give."""
    if field == "v":
        return draw(st.sampled_from([0, 2, "1", True, None])), "encoding"
    if field == "device":
        return draw(st.text(min_size=1, max_size=8).filter(lambda d: d != old)), "device"
    if field in ("seq", "mono_ns"):
        return draw(st.integers(1, 10**6).filter(lambda n: n != old)), "hash"
    if field == "wall_ms":
        return draw(st.integers(-(10**12), 10**13).filter(lambda n: n != old)), "hash"
    if field in ("prev", "hash"):
        return draw(hex64.filter(lambda h: h != old)), "hash"
    if field == "anchor":
        return draw((hex64 | st.just("")).filter(lambda h: h != old)), "hash"
    if field == "synced":
        return not old, "hash"
    if field in ("type", "boot"):
        return draw(st.text(min_size=1, max_size=8).filter(lambda t: t != old)), "hash"
    if field == "data":
        return draw(data_objects.filter(lambda d: d != old)), "hash"
    assert field == "sig"
    other = KEY.sign(draw(st.binary(max_size=16)))
    return base64.b64encode(other).decode(), "signature"


FIELDS = ["v", "device", "seq", "prev", "type", "wall_ms", "synced", "boot", "mono_ns",
          "anchor", "data", "hash", "sig"]  # fmt: skip


@fast
@given(chain_items, st.data())
def test_every_single_field_change_is_caught(items: list[Any], data: st.DataObject) -> None:
    records = make_chain(items)
    index = data.draw(st.integers(0, len(records) - 1))
    field = data.draw(st.sampled_from(FIELDS))
    value, reason = _other_value(field, records[index][field], data.draw)
    assume(not (field == "sig" and value == records[index]["sig"]))
    records[index][field] = value
    seq, got, checked = failure_of(records, start=START)
    assert (got, checked) == (reason, index)
    assert seq == (value if field == "seq" else index + 1)


BAD_TYPES: dict[str, list[Any]] = {
    "v": ["1", 1.0, None],
    "device": [7, "", None],
    "seq": [0, -1, "1", 1.5, True],
    "prev": ["", ZERO_HASH.upper().replace("0", "A"), "0" * 63, 0],
    "type": ["", 3, None],
    "wall_ms": ["1", 1.0, None, 2**53],
    "synced": [0, "true", None],
    "boot": [1, None],
    "mono_ns": [-1, "5", 0.5],
    "anchor": ["0", "AB" * 32, None],
    "data": [[], "x", None, 1],
    "hash": ["", "A" * 64, None],
    "sig": ["", "not base64!", "QUJD", base64.b64encode(b"x" * 63).decode(), None],
}


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, vs in BAD_TYPES.items() for v in vs])
def test_wrong_field_type_is_encoding(field: str, value: Any) -> None:
    records = make_chain([("badge", {"uid": "04A1"})] * 3)
    records[1][field] = value
    seq, reason, checked = failure_of(records, start=START)
    assert (reason, checked) == ("encoding", 1)
    if field != "seq":
        assert seq == 2
    else:  # the seq the record claims, or None when it has none
        assert seq == (value if type(value) is int else None)


@fast
@given(chain_items.filter(lambda i: len(i) >= 2), st.data())
def test_deleted_records_leave_a_gap(items: list[Any], data: st.DataObject) -> None:
    records = make_chain(items)
    first = data.draw(st.integers(0, len(records) - 2))
    last = data.draw(st.integers(first, len(records) - 2))  # never the tail: see below
    del records[first : last + 1]
    seq, reason, checked = failure_of(records, start=START)
    assert (seq, reason, checked) == (last + 2, "gap", first)


@fast
@given(chain_items.filter(lambda i: len(i) >= 2), st.data())
def test_cutting_the_tail_is_invisible_to_the_chain_alone(
    items: list[Any], data: st.DataObject
) -> None:
    # A prefix of a chain is a valid chain: only the portal's receipts (which
    # cover records it already holds) reveal records deleted from the head.
    records = make_chain(items)
    cut = data.draw(st.integers(1, len(records) - 1))
    assert verify_chain(records[:cut], PUB, DEVICE, start=START).ok


@fast
@given(chain_items, st.data(), data_objects)
def test_inserted_fork_is_caught_at_the_original(
    items: list[Any], data: st.DataObject, forged_data: dict[str, Any]
) -> None:
    records = make_chain(items)
    index = data.draw(st.integers(0, len(records) - 1))
    # The key holder signs a second record for an existing seq with the right prev.
    forged = copy.deepcopy(records[index])
    forged["data"] = forged_data
    forged = resign(forged)
    assume(forged["hash"] != records[index]["hash"])
    records.insert(index, forged)
    seq, reason, checked = failure_of(records, start=START)
    assert (seq, reason, checked) == (index + 1, "regression", index + 1)


@fast
@given(chain_items, st.data())
def test_inserted_record_from_outside_is_caught(items: list[Any], data: st.DataObject) -> None:
    records = make_chain(items)
    index = data.draw(st.integers(0, len(records) - 1))
    outsider = make_chain([("badge", {"uid": "DEADBEEF"})], key=OTHER_KEY, first_seq=index + 1,
                          prev=records[index]["prev"])[0]  # fmt: skip
    records.insert(index, outsider)
    seq, reason, checked = failure_of(records, start=START)
    assert (seq, reason, checked) == (index + 1, "signature", index)


@fast
@given(chain_items.filter(lambda i: len(i) >= 2), st.data())
def test_swapped_pair_is_a_gap(items: list[Any], data: st.DataObject) -> None:
    records = make_chain(items)
    i = data.draw(st.integers(0, len(records) - 2))
    records[i], records[i + 1] = records[i + 1], records[i]
    seq, reason, checked = failure_of(records, start=START)
    assert (seq, reason, checked) == (i + 2, "gap", i)


@fast
@given(chain_items, st.data())
def test_replayed_record_is_a_regression(items: list[Any], data: st.DataObject) -> None:
    records = make_chain(items)
    at = data.draw(st.integers(1, len(records)))
    replayed = data.draw(st.integers(0, at - 1))
    records.insert(at, copy.deepcopy(records[replayed]))
    seq, reason, checked = failure_of(records, start=START)
    assert (seq, reason, checked) == (replayed + 1, "regression", at)


@fast
@given(chain_items, st.data())
def test_record_resigned_with_another_key(items: list[Any], data: st.DataObject) -> None:
    records = make_chain(items)
    index = data.draw(st.integers(0, len(records) - 1))
    records[index] = resign(records[index], OTHER_KEY)
    seq, reason, checked = failure_of(records, start=START)
    assert (seq, reason, checked) == (index + 1, "signature", index)
    # Chain-only mode does not look at signatures; the hashes still link.
    assert verify_chain(records, PUB, DEVICE, start=START, signatures=False).ok


@fast
@given(chain_items, st.data())
def test_record_truncated_in_the_middle_is_not_json(items: list[Any], data: st.DataObject) -> None:
    records = make_chain(items)
    text = canonical_bytes(data.draw(st.sampled_from(records)))
    cut = data.draw(st.integers(1, len(text) - 1))
    with pytest.raises(EncodingError):
        parse_json(text[:cut])


def test_failures_come_in_spec_order() -> None:
    # One record wrong in every way at once reports the earliest check only.
    records = make_chain([("badge", {})] * 3)
    bad = records[2]
    bad["seq"] = 1  # regression (and the hash no longer matches)
    bad["sig"] = base64.b64encode(OTHER_KEY.sign(b"x")).decode()
    bad["v"] = 2
    verifier = ChainVerifier(PUB, DEVICE, 2, records[1]["hash"])
    assert verifier.check(bad).reason == "encoding"  # type: ignore[union-attr]
    bad["v"] = 1
    bad["device"] = "dev-other"
    assert verifier.check(bad).reason == "device"  # type: ignore[union-attr]
    bad["device"] = DEVICE
    assert verifier.check(bad).reason == "hash"  # type: ignore[union-attr]
    bad.update(resign(bad, OTHER_KEY))
    assert verifier.check(bad).reason == "signature"  # type: ignore[union-attr]
    bad.update(resign(bad, KEY))
    assert verifier.check(bad).reason == "regression"  # type: ignore[union-attr]
    bad.update(resign({**bad, "seq": 5}, KEY))
    assert verifier.check(bad).reason == "gap"  # type: ignore[union-attr]
    bad.update(resign({**bad, "seq": 3, "prev": "ab" * 32}, KEY))
    assert verifier.check(bad).reason == "link"  # type: ignore[union-attr]
    bad.update(resign({**bad, "prev": records[1]["hash"]}, KEY))
    assert verifier.check(bad) is None
    assert verifier.feed(bad) is None and verifier.last_seq == 3
