"""The row reasons the imports feed (docs/reconciliation.md): schedule_changed_late,
confirmed_early, shared_signer, implausible_schedule, and badges by the read's time.

Hand-made logs of one center and one group (tests/reconcile/support.py), reconciled
by the pure engine from plain schedule versions, members and confirmations.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import date, time, timedelta

from portal.reconcile.engine import CenterInput, Result, reconcile
from portal.reconcile.lessons import ScheduleApproval, ScheduleEntry, local_ms
from portal.reconcile.model import Confirmation, Member, ReconcileSettings
from portal.settings import Settings

from .support import DAY, END, MEMBERS, MIN, START, ZONE, Log, S, sorted_log

UID, UID2 = "04A1B2C3", "04A1B2C4"
GOOD = frozenset({"verified", "present_unproven"})  # not accused (proof is another rule's)
BEFORE = local_ms(DAY - timedelta(days=7), time(12), ZONE)  # a week before the lesson
AFTER = local_ms(DAY + timedelta(days=2), time(12), ZONE)  # two days after it
MONDAY = ScheduleEntry("G1", "C1", 1, time(15), time(16, 30), 3000)


def _log(*taps: int, uid: str = UID) -> Log:
    log = Log()
    log.boot_record(START - 2 * 3600 * S)
    log.heartbeats(START - 2 * 3600 * S + MIN, END + 5 * 3600 * S)
    for at in taps:
        log.door(at - 5 * S, "open")
        log.badge(at, uid)
        log.door(at + 8 * S, "closed")
    log.log = sorted_log(log.log)
    return log


def _conf(child: str = "K1", at: str = f"{DAY} 20:00", signer: str = "parent") -> Confirmation:
    return Confirmation(child, "G1", DAY, at, signer)


def _run(
    schedule: list[ScheduleEntry],
    confirmations: list[Confirmation],
    *taps: int,
    members: list[Member] | None = None,
    approvals: list[ScheduleApproval] | None = None,
    settings: ReconcileSettings | None = None,
    logs: list[Log] | None = None,
) -> Result:
    chosen = logs if logs is not None else [_log(*taps)]
    return reconcile(
        DAY,
        DAY,
        schedule=schedule,
        members=members if members is not None else MEMBERS,
        confirmations=confirmations,
        load_center=lambda c: CenterInput(c, [lg.log for lg in chosen], []),
        settings=settings or ReconcileSettings(),
        zone=ZONE,
        approvals=approvals or (),
    )


def _one(result: Result, child: str = "K1") -> tuple[str, tuple[str, ...], int]:
    [row] = [r for r in result.rows if r.child_id == child]
    return row.status, row.reasons, row.price_kzt


# --- schedule_changed_late ---------------------------------------------------------------


def test_a_make_up_lesson_imported_before_its_date_stays_verified() -> None:
    make_up = ScheduleEntry("G1", "C1", 1, time(10), time(11), 3000, DAY, DAY, imported_ms=BEFORE)
    tap = local_ms(DAY, time(9, 50), ZONE)
    got = _one(_run([make_up], [_conf()], tap))
    assert got[0] in GOOD and "schedule_changed_late" not in got[1]


def test_a_make_up_lesson_added_after_its_date_is_suspect_until_approved() -> None:
    make_up = ScheduleEntry("G1", "C1", 1, time(10), time(11), 3000, DAY, DAY, imported_ms=AFTER)
    tap = local_ms(DAY, time(9, 50), ZONE)
    status, reasons, price = _one(_run([make_up], [_conf()], tap))
    assert (status, reasons, price) == ("suspect", ("schedule_changed_late",), 3000)
    later = AFTER + 3600 * S
    approved = [ScheduleApproval("G1", DAY, DAY, later, "Operator")]
    got = _one(_run([make_up], [_conf()], tap, approvals=approved))
    assert got[0] in GOOD and got[1] == ()


def test_a_lesson_imported_the_same_evening_is_on_time_at_midnight_it_is_late() -> None:
    # The version "as it stood at the end of the date" counts: an import at 23:59 is in time.
    midnight = local_ms(DAY + timedelta(days=1), time(0), ZONE)
    tap = local_ms(DAY, time(9, 50), ZONE)
    for at, reasons in ((midnight - 60 * S, ()), (midnight, ("schedule_changed_late",))):
        make_up = ScheduleEntry("G1", "C1", 1, time(10), time(11), 3000, DAY, DAY, imported_ms=at)
        assert _one(_run([make_up], [_conf()], tap))[1] == reasons, at


def test_a_price_raised_after_the_date_keeps_the_old_price_and_is_flagged() -> None:
    old = ScheduleEntry("G1", "C1", 1, time(15), time(16, 30), 3000, replaced_ms=AFTER)
    new = ScheduleEntry("G1", "C1", 1, time(15), time(16, 30), 9000, imported_ms=AFTER)
    assert _one(_run([old, new], [_conf()], START)) == (
        "suspect",
        ("schedule_changed_late",),
        3000,
    )
    # Approved: the current version (the new price) applies, without the reason.
    approval = ScheduleApproval("G1", DAY, DAY, AFTER + 1, "Operator", "price agreed")
    status, reasons, price = _one(_run([old, new], [_conf()], START, approvals=[approval]))
    assert status in GOOD and reasons == () and price == 9000


def test_a_price_raised_before_the_date_applies_without_a_reason() -> None:
    old = ScheduleEntry("G1", "C1", 1, time(15), time(16, 30), 3000, replaced_ms=BEFORE)
    new = ScheduleEntry("G1", "C1", 1, time(15), time(16, 30), 9000, imported_ms=BEFORE)
    status, reasons, price = _one(_run([old, new], [_conf()], START))
    assert status in GOOD and reasons == () and price == 9000


def test_a_lesson_moved_after_its_date_is_judged_by_the_old_window() -> None:
    old = ScheduleEntry("G1", "C1", 1, time(15), time(16, 30), 3000, replaced_ms=AFTER)
    moved = ScheduleEntry("G1", "C1", 1, time(18), time(19, 30), 3000, imported_ms=AFTER)
    # A tap in the new window only: the old window has no read.
    late_tap = local_ms(DAY, time(18, 0), ZONE)
    [row] = _run([old, moved], [_conf(at=f"{DAY} 21:00")], late_tap).rows
    assert (row.status, row.reasons) == ("suspect", ("schedule_changed_late",))
    assert row.lesson is not None and (row.lesson.start_ms, row.lesson.end_ms) == (START, END)
    assert row.reads == ()  # the tap at 18:00 lies outside the window that stood on the date


def test_a_change_after_the_approval_needs_another_approval() -> None:
    v1 = ScheduleEntry("G1", "C1", 1, time(15), time(16, 30), 3000, replaced_ms=AFTER)
    v2 = ScheduleEntry(
        "G1", "C1", 1, time(15), time(16, 30), 4000, imported_ms=AFTER, replaced_ms=AFTER + 10
    )
    v3 = ScheduleEntry("G1", "C1", 1, time(15), time(16, 30), 9000, imported_ms=AFTER + 10)
    approval = ScheduleApproval("G1", DAY, DAY, AFTER + 5, "Operator")  # approved v2
    status, reasons, price = _one(_run([v1, v2, v3], [_conf()], START, approvals=[approval]))
    assert (status, reasons, price) == ("suspect", ("schedule_changed_late",), 4000)


def test_an_approval_of_other_dates_or_groups_does_not_apply() -> None:
    old = ScheduleEntry("G1", "C1", 1, time(15), time(16, 30), 3000, replaced_ms=AFTER)
    new = ScheduleEntry("G1", "C1", 1, time(15), time(16, 30), 9000, imported_ms=AFTER)
    others = [
        ScheduleApproval("G1", DAY + timedelta(days=1), DAY + timedelta(days=9), AFTER + 1, "x"),
        ScheduleApproval("G2", DAY, DAY, AFTER + 1, "x"),
    ]
    assert _one(_run([old, new], [_conf()], START, approvals=others))[1] == (
        "schedule_changed_late",
    )


def test_the_baseline_import_applies_from_the_beginning() -> None:
    # The city's first import (imported_ms None) after the lesson: no late change.
    got = _one(_run([MONDAY], [_conf()], START))
    assert got[0] in GOOD and got[1] == ()


def test_a_new_group_whose_schedule_arrives_after_its_lesson_is_late() -> None:
    late = ScheduleEntry("G1", "C1", 1, time(15), time(16, 30), 3000, imported_ms=AFTER)
    assert _one(_run([late], [_conf()], START))[:2] == ("suspect", ("schedule_changed_late",))


def test_an_unconfirmed_row_of_a_late_lesson_is_not_accused() -> None:
    late = ScheduleEntry("G1", "C1", 1, time(15), time(16, 30), 3000, imported_ms=AFTER)
    status, reasons, _ = _one(_run([late], [], START))
    assert (status, reasons) == ("present_not_confirmed", ("schedule_changed_late",))


# --- confirmed_early ---------------------------------------------------------------------


def test_a_confirmation_signed_before_the_lesson_ended_is_suspect() -> None:
    early = _conf(at=f"{DAY} 16:29")
    assert _one(_run([MONDAY], [early], START))[:2] == ("suspect", ("confirmed_early",))


def test_a_confirmation_at_or_after_the_end_is_not_early() -> None:
    for at in (f"{DAY} 16:30", f"{DAY + timedelta(days=5)} 09:00"):
        got = _one(_run([MONDAY], [_conf(at=at)], START))
        assert got[0] in GOOD and got[1] == (), at


def test_confirmed_at_with_an_offset_is_read_in_its_own_zone() -> None:
    # 16:45+05:00 is after the 16:30 end; 11:45Z is 16:45 local too; 16:45+06:00 is 15:45.
    for at, early in (
        (f"{DAY}T16:45:00+05:00", False),
        (f"{DAY}T11:45:00Z", False),
        (f"{DAY}T16:45:00+06:00", True),
    ):
        reasons = _one(_run([MONDAY], [_conf(at=at)], START))[1]
        assert ("confirmed_early" in reasons) is early, at


def test_an_empty_or_unreadable_confirmed_at_is_never_verified() -> None:
    for at in ("", "soon"):
        assert _one(_run([MONDAY], [_conf(at=at)], START))[:2] == (
            "suspect",
            ("confirmed_early",),
        ), at


def test_the_stored_instant_is_used_before_the_text() -> None:
    stored = Confirmation("K1", "G1", DAY, f"{DAY} 20:00", "parent", END - 1)
    assert _one(_run([MONDAY], [stored], START))[1] == ("confirmed_early",)


# --- shared_signer -----------------------------------------------------------------------


def _group(n: int) -> tuple[list[Member], list[Log]]:
    members = [Member(f"K{i}", "G1", "C1", frozenset({f"04A1B2{i:02X}"})) for i in range(n)]
    log = Log()
    log.boot_record(START - 2 * 3600 * S)
    log.heartbeats(START - 2 * 3600 * S + MIN, END + 3600 * S)
    for i in range(n):
        at = START - 20 * MIN + i * 60 * S  # one family each minute, its own door opening
        log.door(at - 5 * S, "open")
        log.badge(at, f"04A1B2{i:02X}")
        log.door(at + 8 * S, "closed")
    log.log = sorted_log(log.log)
    return members, [log]


def test_a_signer_for_more_children_than_a_family_flags_each_of_its_rows() -> None:
    members, logs = _group(6)
    confs = [_conf(f"K{i}", signer="Club Admin") for i in range(5)] + [
        _conf("K5", signer="Мама K5")
    ]
    result = _run([MONDAY], confs, members=members, logs=logs)
    for i in range(5):
        assert _one(result, f"K{i}")[:2] == ("suspect", ("shared_signer",))
    assert _one(result, "K5")[1] == ()


def test_a_family_of_four_is_not_flagged_and_case_does_not_hide_a_signer() -> None:
    members, logs = _group(5)
    four = [_conf(f"K{i}", signer="Айгерим") for i in range(4)]
    result = _run([MONDAY], four, members=members, logs=logs)
    assert all(_one(result, f"K{i}")[1] == () for i in range(4))
    five = [*four, _conf("K4", signer="  АЙГЕРИМ ")]
    result = _run([MONDAY], five, members=members, logs=logs)
    assert all(_one(result, f"K{i}")[1] == ("shared_signer",) for i in range(5))


def test_an_operator_can_allow_a_large_family() -> None:
    members, logs = _group(5)
    five = [_conf(f"K{i}", signer="Айгерим") for i in range(5)]
    allowed = ReconcileSettings(shared_signer_allowed=frozenset({"айгерим"}))
    result = _run([MONDAY], five, members=members, logs=logs, settings=allowed)
    assert all(_one(result, f"K{i}")[1] == () for i in range(5))
    raised = ReconcileSettings(shared_signer_max=5)
    result = _run([MONDAY], five, members=members, logs=logs, settings=raised)
    assert all(_one(result, f"K{i}")[1] == () for i in range(5))


# --- implausible_schedule ----------------------------------------------------------------


def test_a_lesson_from_morning_to_night_is_never_verified() -> None:
    day_long = ScheduleEntry("G1", "C1", 1, time(8), time(20), 3000)
    result = _run([day_long], [_conf(at=f"{DAY} 21:00")], local_ms(DAY, time(12), ZONE))
    assert _one(result)[:2] == ("suspect", ("implausible_schedule",))
    three_hours = ScheduleEntry("G1", "C1", 1, time(8), time(11), 3000)
    result = _run([three_hours], [_conf()], local_ms(DAY, time(9), ZONE))
    assert _one(result)[1] == ()


# --- badges and memberships by the read's time -------------------------------------------


def test_a_moved_badge_counts_for_its_new_owner_only_from_the_move() -> None:
    move = START + 10 * MIN  # the import that moved the badge, during the lesson
    members = [
        Member("K1", "G1", "C1", frozenset({UID}), to_ms=move),
        Member("K2", "G1", "C1", frozenset({UID}), from_ms=move),
    ]
    before = _run([MONDAY], [_conf("K1"), _conf("K2")], START - 5 * MIN, members=members)
    assert _one(before, "K1")[0] in GOOD
    assert _one(before, "K2")[0] == "confirmed_without_presence"
    after = _run([MONDAY], [_conf("K1"), _conf("K2")], START + 20 * MIN, members=members)
    assert _one(after, "K1")[0] == "confirmed_without_presence"
    assert _one(after, "K2")[0] in GOOD


def test_a_membership_added_later_does_not_reach_back() -> None:
    members = [Member("K1", "G1", "C1", frozenset({UID}), from_ms=AFTER)]
    assert _one(_run([MONDAY], [_conf()], START, members=members))[0] == (
        "confirmed_without_presence"
    )


def test_the_current_price_prices_a_confirmation_without_a_lesson() -> None:
    old = ScheduleEntry("G1", "C1", 1, time(15), time(16, 30), 3000, replaced_ms=BEFORE)
    new = ScheduleEntry("G1", "C1", 1, time(15), time(16, 30), 5000, imported_ms=BEFORE)
    tuesday = Confirmation("K1", "G1", DAY + timedelta(days=1), f"{DAY} 20:00", "parent")
    result = reconcile(
        DAY,
        DAY + timedelta(days=1),
        schedule=[old, new],
        members=MEMBERS,
        confirmations=[tuesday],
        load_center=lambda c: CenterInput(c, [], []),
        settings=ReconcileSettings(),
        zone=ZONE,
    )
    [row] = result.rows
    assert (row.reasons, row.price_kzt) == (("no_lesson_scheduled",), 5000)


def test_lessons_of_an_unversioned_schedule_are_unchanged() -> None:
    from portal.reconcile.lessons import lessons

    got = lessons([MONDAY], DAY, date(2024, 6, 16), ZONE)
    assert [(x.date.isoformat(), x.changed_late) for x in got] == [
        ("2024-06-03", False),
        ("2024-06-10", False),
    ]


def test_the_running_portal_uses_the_documented_defaults() -> None:
    """Every setting from an unconfigured portal equals the dataclass default (the
    shared_signer_max default once stayed 3 in the portal after it became 4)."""
    portal = ReconcileSettings.from_portal(Settings())
    default = ReconcileSettings()
    differ = {
        f.name: (getattr(portal, f.name), getattr(default, f.name))
        for f in fields(ReconcileSettings)
        if getattr(portal, f.name) != getattr(default, f.name)
    }
    assert differ == {}
