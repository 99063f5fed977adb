"""A child is in one place at a time: overlapping lessons, travel between centers."""

from __future__ import annotations

from datetime import time

from portal.reconcile.engine import CenterInput, Result, reconcile
from portal.reconcile.lessons import ScheduleEntry
from portal.reconcile.model import Confirmation, DeviceLog, Member, ReconcileSettings

from .support import DAY, END, MIN, START, ZONE, Log, S, sorted_log

UID = "04A1B2C3"
G1 = ScheduleEntry("G1", "C1", 1, time(15, 0), time(16, 30), 3000)  # START .. END


def _device(device: str, center: str, taps: list[int], silent: bool = False) -> DeviceLog:
    log = Log(device, center, f"b-{device}")
    log.boot_record(START - 3 * 3600 * S)
    if not silent:
        log.heartbeats(START - 3 * 3600 * S + MIN, END + 4 * 3600 * S)
    for at in taps:
        log.door(at - 2 * S, "open")
        log.badge(at, UID)
        log.door(at + 8 * S, "closed")
    return sorted_log(log.log)


def _run(
    other: ScheduleEntry,
    taps: dict[str, list[int]],
    confirmed: tuple[str, ...] = ("G1", "G2"),
    settings: ReconcileSettings | None = None,
    silent: str = "",
) -> dict[str, tuple[str, tuple[str, ...]]]:
    """K1 in G1 (C1, 15:00-16:30) and in ``other``; ``taps`` by center."""
    members = [
        Member("K1", "G1", "C1", frozenset({UID})),
        Member("K1", other.group_id, other.center_id, frozenset({UID})),
    ]
    devices = {"C1": "D1", "C2": "D2"}
    logs = {c: _device(devices[c], c, taps.get(c, []), c == silent) for c in ("C1", "C2")}
    result: Result = reconcile(
        DAY,
        DAY,
        schedule=[G1, other],
        members=members,
        confirmations=[Confirmation("K1", g, DAY, f"{DAY} 20:00", "p") for g in confirmed],
        load_center=lambda c: CenterInput(c, [logs[c]], []),
        settings=settings or ReconcileSettings(),
        zone=ZONE,
    )
    return {r.group_id: (r.status, r.reasons) for r in result.rows}


def _entry(group: str, center: str, start: time, end: time) -> ScheduleEntry:
    return ScheduleEntry(group, center, 1, start, end, 2500)


OVERLAPPING = _entry("G2", "C2", time(15, 30), time(17, 0))


def test_read_at_two_centers_in_overlapping_lessons_is_double_presence() -> None:
    got = _run(OVERLAPPING, {"C1": [START - 10 * MIN], "C2": [START + 40 * MIN]})
    assert got == {
        "G1": ("suspect", ("double_presence",)),
        "G2": ("suspect", ("double_presence",)),
    }


def test_an_unread_overlapping_row_is_elsewhere_and_the_read_one_stands() -> None:
    got = _run(OVERLAPPING, {"C1": [START - 10 * MIN]})
    assert got == {"G1": ("verified", ()), "G2": ("confirmed_without_presence", ())}
    # Elsewhere outweighs an offline device.
    # C2's device was silent: alone, its row would be unverifiable, not accused.
    assert _run(OVERLAPPING, {}, ("G2",), silent="C2") == {"G2": ("confirmed_device_offline", ())}
    got = _run(OVERLAPPING, {"C1": [START - 10 * MIN]}, silent="C2")
    assert got == {"G1": ("verified", ()), "G2": ("confirmed_without_presence", ())}


def test_confirmed_twice_without_any_read_is_double_presence() -> None:
    got = _run(OVERLAPPING, {})
    assert got["G1"] == got["G2"] == ("suspect", ("double_presence",))


def test_read_but_unconfirmed_elsewhere_still_accuses_the_confirmed_row() -> None:
    got = _run(OVERLAPPING, {"C1": [START - 10 * MIN], "C2": [START + 40 * MIN]}, ("G1",))
    assert got == {
        "G1": ("suspect", ("double_presence",)),
        "G2": ("present_not_confirmed", ("double_presence",)),
    }


def test_back_to_back_lessons_at_two_centers_are_not_double_presence() -> None:
    # The windows overlap (the second opens 30 min before its start); the lessons do not.
    after = _entry("G2", "C2", time(16, 30), time(18, 0))
    taps = {"C1": [START - 10 * MIN], "C2": [END - 10 * MIN]}
    assert _run(after, taps) == {"G1": ("verified", ()), "G2": ("verified", ())}
    # One minute of overlap is an overlap.
    early = _entry("G2", "C2", time(16, 29), time(18, 0))
    assert _run(early, taps)["G2"] == ("suspect", ("double_presence",))


def test_reads_at_two_centers_closer_than_travel_min_are_double_presence() -> None:
    later = _entry("G2", "C2", time(17, 0), time(18, 0))
    taps = {"C1": [END - 5 * MIN], "C2": [END + 5 * MIN]}
    got = _run(later, taps)
    assert got == {
        "G1": ("suspect", ("double_presence",)),
        "G2": ("suspect", ("double_presence",)),
    }
    quick = ReconcileSettings(travel_min_ms=5 * MIN)
    assert _run(later, taps, settings=quick) == {"G1": ("verified", ()), "G2": ("verified", ())}


def test_one_tap_for_two_overlapping_groups_of_one_center_claimed_once() -> None:
    same = _entry("G2", "C1", time(15, 0), time(16, 30))
    got = _run(same, {"C1": [START - 10 * MIN]}, ("G1",))
    assert got == {"G1": ("verified", ()), "G2": ("present_not_confirmed", ())}
    both = _run(same, {"C1": [START - 10 * MIN]})
    assert both["G1"] == both["G2"] == ("suspect", ("double_presence",))


def test_staying_for_the_next_lesson_after_one_tap_is_unverifiable_not_accused() -> None:
    next_one = _entry("G2", "C1", time(16, 30), time(18, 0))
    got = _run(next_one, {"C1": [START - 10 * MIN]})
    assert got == {"G1": ("verified", ()), "G2": ("present_unproven", ())}
    # Without the tap before, the second lesson is unread like any other.
    alone = _run(next_one, {"C1": []}, ("G2",))
    assert alone == {"G2": ("confirmed_without_presence", ())}
    # Nor is a lesson that starts more than the margin after the first one ends.
    evening = _entry("G2", "C1", time(17, 30), time(19, 0))  # 60 min after G1's end
    got = _run(evening, {"C1": [START - 10 * MIN]})
    assert got == {"G1": ("verified", ()), "G2": ("confirmed_without_presence", ())}
