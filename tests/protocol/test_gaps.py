"""Declared gaps (docs/protocol.md): holes are bridged exactly where a signed gap
record declares them, and nowhere else."""

from __future__ import annotations

from typing import Any

from agent.protocol import (
    ZERO_HASH,
    ChainVerifier,
    DeclaredGap,
    build_record,
    collect_declared_gaps,
    parse_gap_data,
    verify_chain,
)
from tests.protocol.chains import DEVICE, KEY, OTHER_KEY, make_chain, resign

PUB = KEY.public_key()
START = (0, ZERO_HASH)


def badges(n: int) -> list[tuple[str, dict[str, Any]]]:
    return [("badge", {"uid": f"04{i:06X}"}) for i in range(n)]


def gap_record(seq: int, prev: str, first: int, last: int, last_hash: str, key: Any = KEY) -> Any:
    return build_record(
        key, device=DEVICE, seq=seq, prev=prev, type="gap", wall_ms=0, synced=False,
        boot="b", mono_ns=0, anchor="",
        data={"first_seq": first, "last_seq": last, "last_hash": last_hash,
              "reason": "quarantined"},
    )  # fmt: skip


def lost_middle() -> tuple[list[Any], list[Any]]:
    """Records 1..10; 4..6 quarantined; the device appends gap record 11 naming them."""
    full = make_chain(badges(10))
    gap = gap_record(11, full[-1]["hash"], 4, 6, full[5]["hash"])
    return full, [*full[:3], *full[6:], gap]


def test_declared_hole_in_the_middle_is_bridged() -> None:
    _, chain = lost_middle()
    report = verify_chain(chain, PUB, DEVICE, start=START)
    assert report.ok, report.failure
    assert [(g.first_seq, g.last_seq, g.declared_at) for g in report.gaps] == [(4, 6, 11)]
    assert report.declared == report.gaps and report.head_seq == 11


def test_undeclared_hole_is_a_gap() -> None:
    _full, chain = lost_middle()
    assert verify_chain(chain[:-1], PUB, DEVICE, start=START).failure.reason == "gap"  # type: ignore[union-attr]
    # The same chain with a hole the declaration does not cover.
    del chain[2]  # record 3 as well
    failure = verify_chain(chain, PUB, DEVICE, start=START).failure
    assert failure is not None and (failure.seq, failure.reason) == (7, "gap")


def test_unsigned_or_wrongly_signed_gap_bridges_nothing() -> None:
    full, chain = lost_middle()
    for forged in (
        gap_record(11, full[-1]["hash"], 4, 6, full[5]["hash"], key=OTHER_KEY),
        {**chain[-1], "sig": OTHER_KEY.sign(b"x").hex()},  # not even base64
        {**chain[-1], "data": {**chain[-1]["data"], "first_seq": 3}},  # hash broken
    ):
        tampered = [*chain[:-1], forged]
        assert collect_declared_gaps(tampered, PUB, DEVICE) == []
        failure = verify_chain(tampered, PUB, DEVICE, start=START).failure
        assert failure is not None and (failure.seq, failure.reason) == (7, "gap")


def test_gap_record_of_another_device_bridges_nothing() -> None:
    _full, chain = lost_middle()
    other = resign({**chain[-1], "device": "dev-other"})
    assert collect_declared_gaps([*chain[:-1], other], PUB, DEVICE) == []


def test_bridge_needs_the_declared_last_hash() -> None:
    _full, chain = lost_middle()
    # Record 7 claims a prev that is not the declared last_hash.
    chain[3] = resign({**chain[3], "prev": "cd" * 32})
    failure = verify_chain(chain, PUB, DEVICE, start=START).failure
    assert failure is not None and (failure.seq, failure.reason) == (7, "link")


def test_hole_must_start_at_or_before_the_verifiers_next_seq() -> None:
    full, chain = lost_middle()
    # The verifier accepted only up to 2: record 3 is missing and undeclared.
    failure = verify_chain(chain[3:], PUB, DEVICE, start=(2, full[1]["hash"])).failure
    assert failure is not None and (failure.seq, failure.reason) == (7, "gap")
    # Verifier already past the hole's start (portal holds 4 and 5): still bridged.
    report = verify_chain(chain[3:], PUB, DEVICE, start=(5, full[4]["hash"]))
    assert report.ok and [g.first_seq for g in report.gaps] == [4]


def lost_head(held: int) -> tuple[list[Any], list[Any]]:
    """Records 1..10 made; the device lost 8..10 and reserved up to 12, so it
    declares 8..12 with last_hash "" as record 13 with prev of 64 zeros."""
    full = make_chain(badges(10))
    gap = gap_record(13, ZERO_HASH, 8, 12, "")
    after = make_chain(badges(2), first_seq=14, prev=gap["hash"])
    return full[:held], [gap, *after]


def test_lost_head_is_bridged_with_zero_prev() -> None:
    held, tail = lost_head(7)
    report = verify_chain([*held, *tail], PUB, DEVICE, start=START)
    assert report.ok, report.failure
    assert [(g.first_seq, g.last_seq, g.last_hash) for g in report.gaps] == [(8, 12, "")]
    assert report.head_seq == 15


def test_lost_head_partial_overlap_with_what_the_verifier_holds() -> None:
    # The portal had already received 8 and 9 before the device lost them.
    held, tail = lost_head(9)
    report = verify_chain([*held, *tail], PUB, DEVICE, start=START)
    assert report.ok, report.failure
    # ... and if it even had 10, 11 and 12, the gap record (seq 13) arrives at
    # the expected seq with 64 zeros for prev: the declaration bridges the link.
    full = make_chain(badges(12))
    gap = gap_record(13, ZERO_HASH, 8, 12, "")
    report = verify_chain([*full, gap], PUB, DEVICE, start=START)
    assert report.ok, report.failure
    assert [g.declared_at for g in report.gaps] == [13]


def test_zero_prev_without_a_declaration_is_a_link_failure() -> None:
    full = make_chain(badges(5))
    forged = make_chain(badges(1), first_seq=6, prev=ZERO_HASH)
    failure = verify_chain([*full, *forged], PUB, DEVICE, start=START).failure
    assert failure is not None and (failure.seq, failure.reason) == (6, "link")


def test_lost_head_declared_range_must_reach_the_verifier() -> None:
    held, tail = lost_head(5)  # records 6 and 7 missing, never declared
    failure = verify_chain([*held, *tail], PUB, DEVICE, start=START).failure
    assert failure is not None and (failure.seq, failure.reason) == (13, "gap")


def test_gap_data_rules() -> None:
    ok = gap_record(13, ZERO_HASH, 8, 12, "")
    assert isinstance(parse_gap_data(ok), DeclaredGap)
    for data in (
        {"first_seq": 9, "last_seq": 8, "last_hash": ""},  # empty range
        {"first_seq": 0, "last_seq": 8, "last_hash": ""},
        {"first_seq": 8, "last_seq": 13, "last_hash": ""},  # covers itself
        {"first_seq": 8, "last_seq": 11, "last_hash": ""},  # "" but not right after
        {"first_seq": 8, "last_seq": 12, "last_hash": "AB" * 32},
        {"first_seq": "8", "last_seq": 12, "last_hash": ""},
        {"first_seq": 8, "last_seq": 12},
    ):
        assert isinstance(parse_gap_data({**ok, "data": data}), str), data


def test_incremental_verifier_with_a_declaration_from_elsewhere() -> None:
    # The portal learns a declaration from POST .../gaps before the records.
    full, chain = lost_middle()
    declared = parse_gap_data(chain[-1])
    assert isinstance(declared, DeclaredGap)
    verifier = ChainVerifier(PUB, DEVICE, 3, full[2]["hash"], [declared])
    for record in chain[3:]:
        assert verifier.feed(record) is None
    assert verifier.bridged == [declared] and verifier.declared == [declared]
