"""Trusted time (docs/reconciliation.md): receipt bounds, bridging by mono_ns in a boot."""

from __future__ import annotations

from portal.reconcile.model import DeviceLog
from portal.reconcile.trusted_time import place

T0 = 1_717_000_000_000
S = 1000
DAY = 86_400 * S
TOL = 120 * S


def log_of(*rows: tuple[int, int, bool, str, int | None, int | None]) -> DeviceLog:
    """Rows of (true ms, claimed wall ms, synced, boot, anchor_ms, covered_ms)."""
    log = DeviceLog("D1", "C1")
    for n, (true, wall, synced, boot, anchor, covered) in enumerate(rows, 1):
        log.append(
            seq=n,
            type="heartbeat",
            wall_ms=wall,
            synced=synced,
            boot=boot,
            mono_ns=(true - T0 + 5 * S) * 1_000_000,
            anchor_ms=anchor,
            covered_ms=covered,
            data=None,
        )
    return log


def test_synced_records_within_bounds_are_trusted_at_wall_clock() -> None:
    times, trusted = place(log_of((T0, T0, True, "b", T0 - 60 * S, T0 + 60 * S)), TOL)
    assert times == [T0] and trusted == [True]


def test_clock_set_back_is_bridged_to_a_later_synced_record_of_the_same_boot() -> None:
    wrong = -3 * DAY
    log = log_of(
        (T0, T0 + wrong, False, "b", None, T0 + 900 * S),
        (T0 + 60 * S, T0 + 60 * S + wrong, False, "b", None, T0 + 900 * S),
        (T0 + 600 * S, T0 + 600 * S, True, "b", None, T0 + 900 * S),
    )
    times, trusted = place(log, TOL)
    assert times == [T0, T0 + 60 * S, T0 + 600 * S]
    assert trusted == [True, True, True]


def test_clock_set_forward_is_bridged_to_an_earlier_synced_record() -> None:
    ahead = 5 * 3600 * S
    log = log_of(
        (T0, T0, True, "b", T0 - 10 * S, T0 + 100 * S),
        (T0 + 30 * S, T0 + 30 * S + ahead, False, "b", T0 - 10 * S, T0 + 100 * S),
    )
    times, trusted = place(log, TOL)
    assert times == [T0, T0 + 30 * S] and trusted == [True, True]


def test_the_nearer_synced_record_by_monotonic_distance_is_used() -> None:
    # Synced before (wall 1 s off) and after (exact): the record sits nearer the after one.
    log = log_of(
        (T0, T0 + 1000, True, "b", None, None),
        (T0 + 90 * S, T0 - DAY, False, "b", None, None),
        (T0 + 100 * S, T0 + 100 * S, True, "b", None, None),
    )
    times, _ = place(log, TOL)
    assert times[1] == T0 + 90 * S


def test_unsynced_without_a_synced_record_in_its_boot_is_untrusted_at_its_claim() -> None:
    claim = T0 - 9 * 3600 * S
    log = log_of(
        (T0 - 100 * S, T0 - 100 * S, True, "a", None, None),  # another boot: no bridge
        (T0, claim, False, "b", T0 - 60 * S, T0 + 600 * S),
    )
    times, trusted = place(log, TOL)
    assert times[1] == claim and trusted[1] is False


def test_a_synced_claim_before_the_anchor_bound_is_untrusted() -> None:
    log = log_of((T0, T0 - 3600 * S, True, "b", T0 - 60 * S, T0 + 60 * S))
    times, trusted = place(log, TOL)
    assert times == [T0 - 3600 * S] and trusted == [False]


def test_receipt_bound_with_tolerance_is_inclusive() -> None:
    covered = T0
    inside = log_of((T0, covered + TOL, True, "b", None, covered))
    outside = log_of((T0, covered + TOL + 1, True, "b", None, covered))
    assert place(inside, TOL)[1] == [True]
    assert place(outside, TOL)[1] == [False]
    anchor = T0
    low_in = log_of((T0, anchor - TOL, True, "b", anchor, None))
    low_out = log_of((T0, anchor - TOL - 1, True, "b", anchor, None))
    assert place(low_in, TOL)[1] == [True]
    assert place(low_out, TOL)[1] == [False]


def test_a_bridged_time_outside_the_bounds_is_untrusted() -> None:
    # The synced neighbour itself lies (clock far ahead yet "synced"): the bridge lands
    # beyond the receipt bound, so the record keeps its claim, untrusted.
    log = log_of(
        (T0, T0 + DAY, True, "b", None, T0 + 60 * S),
        (T0 + 10 * S, T0 + 10 * S - DAY, False, "b", None, T0 + 60 * S),
    )
    times, trusted = place(log, TOL)
    assert trusted == [False, False]
    assert times[1] == T0 + 10 * S - DAY


def test_same_boot_id_after_another_boot_still_bridges() -> None:
    # The rule is "the same boot", not "the same stretch of records".
    log = log_of(
        (T0, T0, True, "a", None, None),
        (T0 + 10 * S, T0 - DAY, False, "b", None, None),
        (T0 + 20 * S, T0 + 5 * DAY, False, "a", None, None),
    )
    times, trusted = place(log, TOL)
    assert trusted == [True, False, True]
    assert times == [T0, T0 - DAY, T0 + 20 * S]


# --- portal-bracketed time (decision 0810) --------------------------------------------

BRACKET = 600 * S


def test_an_unsynced_record_bracketed_within_600_s_is_trusted_at_its_claim() -> None:
    # A kernel that never reports NTP sync, clock right to 20 s: receipts 300 s apart.
    claim = T0 + 20 * S
    log = log_of((T0, claim, False, "b", T0 - 299 * S, T0 + 1 * S))
    times, trusted = place(log, TOL, BRACKET)
    assert times == [claim] and trusted == [True]


def test_a_bracket_of_exactly_the_setting_is_enough_and_one_ms_more_is_not() -> None:
    edge = log_of((T0, T0, False, "b", T0 - 300 * S, T0 + 300 * S))
    wider = log_of((T0, T0, False, "b", T0 - 300 * S, T0 + 300 * S + 1))
    assert place(edge, TOL, BRACKET)[1] == [True]
    assert place(wider, TOL, BRACKET)[1] == [False]


def test_a_wider_bracket_leaves_the_record_untrusted() -> None:
    # Offline for an hour: the device could have claimed any time within it.
    log = log_of((T0, T0, False, "b", T0 - 3600 * S, T0 + 60 * S))
    times, trusted = place(log, TOL, BRACKET)
    assert times == [T0] and trusted == [False]


def test_a_claim_outside_its_bracket_is_untrusted() -> None:
    inside = log_of((T0, T0 + 60 * S + TOL, False, "b", T0 - 60 * S, T0 + 60 * S))
    outside = log_of((T0, T0 + 60 * S + TOL + 1, False, "b", T0 - 60 * S, T0 + 60 * S))
    early = log_of((T0, T0 - 60 * S - TOL - 1, False, "b", T0 - 60 * S, T0 + 60 * S))
    assert place(inside, TOL, BRACKET)[1] == [True]
    assert place(outside, TOL, BRACKET)[1] == [False]
    assert place(early, TOL, BRACKET)[1] == [False]


def test_a_missing_bound_leaves_the_record_untrusted() -> None:
    no_anchor = log_of((T0, T0, False, "b", None, T0 + 10 * S))  # before the first receipt
    never_covered = log_of((T0, T0, False, "b", T0 - 10 * S, None))
    assert place(no_anchor, TOL, BRACKET)[1] == [False]
    assert place(never_covered, TOL, BRACKET)[1] == [False]


def test_disabled_the_rule_is_spec_literal() -> None:
    log = log_of((T0, T0, False, "b", T0 - 10 * S, T0 + 10 * S))
    assert place(log, TOL, 0) == ([T0], [False])
    assert place(log, TOL) == ([T0], [False])  # the pure function defaults to off


def test_a_synced_reference_decides_even_when_the_bracket_would_trust() -> None:
    # The bridge from a lying "synced" neighbour lands outside the bounds: the record
    # stays untrusted; the bracket only speaks for records with no reference at all.
    log = log_of(
        (T0, T0 + DAY, True, "b", T0 - 10 * S, T0 + 60 * S),
        (T0 + 10 * S, T0 + 10 * S, False, "b", T0 - 10 * S, T0 + 60 * S),
    )
    assert place(log, TOL, BRACKET)[1] == [False, False]
