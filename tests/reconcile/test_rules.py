"""docs/reconciliation.md, rule by rule, on hand-made logs (one center, one group, one lesson)."""

from __future__ import annotations

from datetime import date

import pytest

from portal.reconcile.model import IntegrityEvent, ReconcileSettings

from .support import END, MIN, START, Log, S, confirm, run, status

UID = "04A1B2C3"


def honest(log: Log) -> Log:
    log.boot_record(START - 2 * 3600 * S)
    log.heartbeats(START - 2 * 3600 * S + MIN, END + 3600 * S)
    return log


def built(log: Log) -> Log:
    """Records in time order, as a device makes them."""
    from .support import sorted_log

    log.log = sorted_log(log.log)
    return log


def tap(log: Log, at: int, uid: str = UID, door: bool = True, **kw: object) -> None:
    if door:
        log.door(at - 5 * S, "open")
        log.door(at + 8 * S, "closed")
    log.badge(at, uid, **kw)  # type: ignore[arg-type]


def test_a_tap_behind_an_open_door_is_verified() -> None:
    log = honest(Log())
    tap(log, START - 10 * MIN)
    assert status(run([built(log).log], [confirm()])) == ("verified", ())


@pytest.mark.parametrize(
    ("offset", "present"),
    [(-30 * MIN, True), (-30 * MIN - 1, False), (90 * MIN, True), (90 * MIN + 1, False)],
)
def test_presence_window_is_start_minus_margin_to_end(offset: int, present: bool) -> None:
    log = honest(Log())
    tap(log, START + offset)
    got = status(run([built(log).log], [confirm()]))
    assert got == (("verified", ()) if present else ("confirmed_without_presence", ()))


def test_a_read_from_another_centers_device_is_not_presence() -> None:
    here, there = honest(Log()), honest(Log("D2", "C2", "b2"))
    tap(there, START)
    result = run([built(here).log, built(there).log], [confirm()])
    assert status(result) == ("confirmed_without_presence", ())


def test_present_but_not_confirmed() -> None:
    log = honest(Log())
    tap(log, START)
    assert status(run([built(log).log], [])) == ("present_not_confirmed", ())


def test_a_confirmation_without_a_lesson_that_day() -> None:
    log = honest(Log())
    result = run([built(log).log], [confirm(day=date(2024, 6, 4))], last=date(2024, 6, 4))
    [row] = result.rows
    assert (row.status, row.reasons, row.price_kzt) == (
        "confirmed_without_presence",
        ("no_lesson_scheduled",),
        3000,
    )


def _burst(gap_ms: int, uids: int) -> tuple[str, tuple[str, ...]]:
    log = honest(Log())
    log.door(START - 60 * S, "open")
    for k in range(uids):
        log.badge(START + k * gap_ms, f"04A1B2{0xC3 + k:02X}")
    log.door(START + 60 * S, "closed")
    return status(run([built(log).log], [confirm()]))


def test_card_burst_needs_four_distinct_uids_with_gaps_under_1_5_s() -> None:
    assert _burst(1400, 4) == ("suspect", ("card_burst",))
    assert _burst(1400, 3) == ("verified", ())
    assert _burst(1500, 4) == ("verified", ())


def test_card_burst_counts_distinct_uids_not_reads() -> None:
    log = honest(Log())
    log.door(START - 60 * S, "open")
    for k in range(8):
        log.badge(START + k * 500, UID if k % 2 else "04A1B2C4")
    log.door(START + 60 * S, "closed")
    assert status(run([built(log).log], [confirm()])) == ("verified", ())


def test_no_door_passage_when_the_door_stays_shut() -> None:
    log = honest(Log())
    tap(log, START, door=False)
    assert status(run([built(log).log], [confirm()])) == ("suspect", ("no_door_passage",))


@pytest.mark.parametrize(
    ("opened_at", "ok"), [(60 * S, True), (60 * S + 1, False), (-60 * S - 1, False)]
)
def test_door_open_must_fall_within_60_s(opened_at: int, ok: bool) -> None:
    log = honest(Log())
    log.door(START + opened_at, "open")
    log.door(START + opened_at + 1, "closed")
    log.badge(START, UID)
    got = status(run([built(log).log], [confirm()]))
    assert got == (("verified", ()) if ok else ("suspect", ("no_door_passage",)))


def test_a_door_held_open_throughout_counts_as_open() -> None:
    log = honest(Log())
    log.door(START - 20 * MIN, "open")
    log.door(START + 20 * MIN, "closed")
    log.badge(START, UID)
    assert status(run([built(log).log], [confirm()])) == ("verified", ())


def test_a_boot_listing_no_door_is_no_door_sensor_unless_the_center_may_run_without() -> None:
    log = Log()
    log.boot_record(START - 2 * 3600 * S, doors=())
    log.heartbeats(START - 2 * 3600 * S + MIN, END + 3600 * S)
    log.badge(START, UID)
    log = built(log)
    assert status(run([log.log], [confirm()])) == ("suspect", ("no_door_sensor",))
    optional = ReconcileSettings(door_optional_centers=frozenset({"C1"}))
    assert status(run([log.log], [confirm()], settings=optional)) == ("verified", ())


def test_simulated_reader() -> None:
    log = honest(Log())
    tap(log, START, reader="desk", driver="simulated")
    assert status(run([built(log).log], [confirm()])) == ("suspect", ("simulated_reader",))


def test_time_untrusted_read_counts_at_its_claim() -> None:
    log = honest(Log())
    log.door(START - 5 * S, "open")
    log.door(START + 8 * S, "closed")
    # Made 9 h later in a boot that never synced, claiming the lesson's time.
    log.boot_record(
        START + 9 * 3600 * S - MIN,
        boot="b2",
        synced=False,
        wall=START - MIN,
        anchor_ms=START + 9 * 3600 * S - 5 * MIN,
    )
    log.badge(
        START + 9 * 3600 * S,
        UID,
        wall=START,
        synced=False,
        boot="b2",
        anchor_ms=START + 9 * 3600 * S - 5 * MIN,
    )
    got = status(run([built(log).log], [confirm()]))
    assert got == ("suspect", ("time_untrusted",))


def test_one_clean_read_makes_the_row_verified() -> None:
    log = honest(Log())
    log.badge(START - 20 * MIN, UID)  # no door
    tap(log, START)
    assert status(run([built(log).log], [confirm()])) == ("verified", ())


def test_suspect_lists_the_union_of_reasons() -> None:
    log = honest(Log())
    log.badge(START - 20 * MIN, UID)
    tap(log, START, reader="desk", driver="simulated")
    got = status(run([built(log).log], [confirm()]))
    assert got == ("suspect", ("no_door_passage", "simulated_reader"))


def _hole(first_before: int, last_after: int) -> tuple[str, tuple[str, ...]]:
    log = honest(Log())
    tap(log, START)
    log = built(log)
    seqs = log.log.seq
    times = log.log.wall_ms
    # The declared hole spans seqs strictly between the records at these two times.
    first = next(s for s, t in zip(seqs, times, strict=True) if t > first_before)
    last = max(s for s, t in zip(seqs, times, strict=True) if t < last_after)
    ev = IntegrityEvent("D1", "gap", first, last, END + 3600 * S)
    return status(run([log.log], [confirm()], [ev]))


def test_a_declared_hole_in_the_window_taints_its_reads() -> None:
    assert _hole(START + 20 * MIN, START + 40 * MIN) == ("suspect", ("chain_integrity",))


def test_a_declared_hole_outside_the_window_does_not() -> None:
    assert _hole(END + 20 * MIN, END + 40 * MIN) == ("verified", ())


def test_a_point_integrity_event_in_the_window_taints() -> None:
    log = honest(Log())
    tap(log, START)
    ev = IntegrityEvent("D1", "rejected", None, None, START + MIN, "signature")
    got = status(run([built(log).log], [confirm()], [ev]))
    assert got == ("suspect", ("chain_integrity",))


def _silent(lo: int, hi: int, settings: ReconcileSettings | None = None) -> str:
    log = Log()
    log.boot_record(START - 2 * 3600 * S)
    log.heartbeats(lo - 3600 * S, lo - 5 * MIN)
    log.add("heartbeat", lo)
    log.heartbeats(hi, END + 3600 * S)
    return status(run([built(log).log], [confirm()], settings=settings))[0]


def test_a_silence_longer_than_two_heartbeats_makes_the_device_offline() -> None:
    assert _silent(START, START + 10 * MIN + 1) == "confirmed_device_offline"
    assert _silent(START, START + 10 * MIN) == "confirmed_without_presence"


def test_window_edges_end_a_silence() -> None:
    # Silent from before the window to 10 min + 1 ms after its start.
    lo = START - 30 * MIN
    assert _silent(lo - 5 * MIN, lo + 10 * MIN + 1) == "confirmed_device_offline"
    assert _silent(lo - 5 * MIN, lo + 10 * MIN) == "confirmed_without_presence"


def test_offline_threshold_follows_the_heartbeat_setting() -> None:
    slow = ReconcileSettings(heartbeat_interval_s=600)
    assert _silent(START, START + 15 * MIN, slow) == "confirmed_without_presence"


def test_another_device_of_the_center_keeps_it_online() -> None:
    quiet = Log()
    quiet.boot_record(START - 2 * 3600 * S)
    busy = honest(Log("D2", "C1", "b2"))
    result = run([built(quiet).log, built(busy).log], [confirm()])
    assert status(result)[0] == "confirmed_without_presence"


def test_silences_are_listed_at_the_edges_inside_and_for_an_empty_window() -> None:
    # Window [START - 30 min, END]: silent at its start, twice inside, and at its end.
    lo = START - 30 * MIN
    log = Log()
    log.boot_record(START - 2 * 3600 * S)
    for at in (lo + 11 * MIN, lo + 12 * MIN, lo + 40 * MIN, lo + 45 * MIN, lo + 70 * MIN):
        log.add("heartbeat", at)
    log.add("heartbeat", END + 3600 * S)
    [row] = run([built(log).log], [confirm()]).rows
    assert row.status == "confirmed_device_offline" and row.coverage is not None
    assert row.coverage.silences == (
        (lo, lo + 11 * MIN),
        (lo + 12 * MIN, lo + 40 * MIN),
        (lo + 45 * MIN, lo + 70 * MIN),
        (lo + 70 * MIN, END),
    )
    assert row.coverage.records == 5
    nothing = Log()
    nothing.add("heartbeat", lo - 3600 * S)
    [row] = run([nothing.log], [confirm()]).rows
    assert row.coverage is not None and row.coverage.silences == ((lo, END),)
    assert row.coverage.records == 0
