"""Trusted time (docs/reconciliation.md): receipt bounds, bridging by mono_ns in a boot.

Proven time has its own file (test_proven_time.py)."""

from __future__ import annotations

from portal.reconcile.model import DeviceLog
from portal.reconcile.trusted_time import Placed
from portal.reconcile.trusted_time import place as _place

T0 = 1_717_000_000_000
S = 1000
DAY = 86_400 * S
TOL = 120 * S


def place(log: DeviceLog, tol: int) -> tuple[list[int], list[bool]]:
    placed: Placed = _place(log, tol)
    return placed.times, placed.trusted


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


def test_unsynced_without_a_synced_record_in_its_boot_is_judged_at_its_claim() -> None:
    # No reference to bridge from: the claim itself meets the bounds. Outside them it is
    # untrusted; inside them it is not accused (whether it is proven is another matter).
    log = log_of(
        (T0 - 100 * S, T0 - 100 * S, True, "a", None, None),  # another boot: no bridge
        (T0, T0 - 9 * 3600 * S, False, "b", T0 - 60 * S, T0 + 600 * S),
        (T0 + 10 * S, T0 + 15 * S, False, "b", T0 - 60 * S, T0 + 600 * S),
    )
    times, trusted = place(log, TOL)
    assert times[1:] == [T0 - 9 * 3600 * S, T0 + 15 * S]
    assert trusted[1:] == [False, True]


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
    # Boot "b" has no synced record and no bounds: its claim stands, unchecked.
    assert trusted == [True, True, True]
    assert times == [T0, T0 - DAY, T0 + 20 * S]


# --- trust is "not provably outside" (decision 0820) ------------------------------


def test_a_never_synced_claim_within_wide_bounds_is_trusted() -> None:
    # Out of contact for an hour: the claim cannot be checked closely, but nothing shows
    # it wrong, so it is not time_untrusted (it is unproven: test_proven_time.py).
    log = log_of((T0, T0, False, "b", T0 - 3600 * S, T0 + 60 * S))
    assert place(log, TOL) == ([T0], [True])


def test_a_claim_outside_its_bounds_is_untrusted_whatever_synced_says() -> None:
    for synced in (True, False):
        inside = log_of((T0, T0 + 60 * S + TOL, synced, "b", T0 - 60 * S, T0 + 60 * S))
        outside = log_of((T0, T0 + 60 * S + TOL + 1, synced, "b", T0 - 60 * S, T0 + 60 * S))
        early = log_of((T0, T0 - 60 * S - TOL - 1, synced, "b", T0 - 60 * S, T0 + 60 * S))
        assert place(inside, TOL)[1] == [True]
        assert place(outside, TOL)[1] == [False]
        assert place(early, TOL)[1] == [False]


def test_a_missing_bound_checks_only_the_other() -> None:
    no_anchor = log_of((T0, T0, False, "b", None, T0 + 10 * S))  # before the first receipt
    never_covered = log_of((T0, T0, False, "b", T0 - 10 * S, None))
    late_claim = log_of((T0, T0 + 3600 * S, False, "b", None, T0 + 10 * S))
    assert place(no_anchor, TOL)[1] == [True]
    assert place(never_covered, TOL)[1] == [True]
    assert place(late_claim, TOL)[1] == [False]


def test_a_synced_reference_decides_for_a_record_that_has_one() -> None:
    # The bridge from a lying "synced" neighbour lands outside the bounds: the record is
    # untrusted even though its own claim would have fitted them.
    log = log_of(
        (T0, T0 + DAY, True, "b", T0 - 10 * S, T0 + 60 * S),
        (T0 + 10 * S, T0 + 10 * S, False, "b", T0 - 10 * S, T0 + 60 * S),
    )
    assert place(log, TOL)[1] == [False, False]
