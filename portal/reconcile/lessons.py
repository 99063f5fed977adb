"""Lessons from the weekly schedule, placed in the portal's time zone.

A schedule entry says "group G meets on weekday W from HH:MM to HH:MM local";
a lesson is one such meeting on one date, as a window of Unix milliseconds.
Local times are converted with :mod:`zoneinfo`, so a zone whose offset changed
(Asia/Almaty: UTC+6 until 2024-03-01, UTC+5 since) places each date correctly,
provided the zone data knows the change: :func:`load_zone` refuses data that
does not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from portal.exceptions import PortalConfigError

logger = logging.getLogger(__name__)

# Offsets the zone data must give, checked at start-up: (zone, UTC instant, hours).
_KNOWN_OFFSETS: dict[str, tuple[tuple[datetime, int], ...]] = {
    "Asia/Almaty": (
        (datetime(2024, 2, 15, 12, tzinfo=UTC), 6),
        (datetime(2024, 6, 1, 12, tzinfo=UTC), 5),
    ),
}


def _from_tzdata_package(name: str) -> ZoneInfo | None:
    """The zone from the ``tzdata`` package (a portal dependency), ahead of the OS copy."""
    try:
        ref = resources.files("tzdata.zoneinfo").joinpath(*name.split("/"))
        with ref.open("rb") as fh:
            return ZoneInfo.from_file(fh, key=name)
    except (ModuleNotFoundError, FileNotFoundError, IsADirectoryError, ValueError, OSError):
        return None


@cache
def load_zone(name: str) -> ZoneInfo:
    """The portal's time zone; raises :class:`PortalConfigError` for stale or missing data.

    Loaded once per name and process: every page and report asks for it.
    """
    zone = _from_tzdata_package(name)
    if zone is None:
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise PortalConfigError(f"time zone {name!r}: no zone data ({exc})") from exc
    check_zone(zone, name)
    return zone


def check_zone(zone: ZoneInfo, name: str) -> None:
    for instant, hours in _KNOWN_OFFSETS.get(name, ()):
        offset = instant.astimezone(zone).utcoffset()
        if offset != timedelta(hours=hours):
            raise PortalConfigError(
                f"time zone {name!r}: the zone data in use gives UTC{_fmt(offset)} on "
                f"{instant.date()} where it should be UTC+{hours} (Asia/Almaty moved from "
                "UTC+6 to UTC+5 on 2024-03-01); install tzdata 2024a or newer"
            )


def _fmt(offset: timedelta | None) -> str:
    if offset is None:
        return "?"
    hours = offset.total_seconds() / 3600
    return f"{hours:+g}"


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One weekly slot of a group (a row of the schedule import)."""

    group_id: str
    center_id: str
    weekday: int  # 1 = Monday ... 7 = Sunday
    start: time
    end: time
    price_kzt: int
    valid_from: date | None = None
    valid_to: date | None = None
    # The version's life in the portal (docs/reconciliation.md, "Schedule history"):
    # imported then (None: from the beginning, the city's first import), replaced by
    # the next version of its key then (None: the current version).
    imported_ms: int | None = None
    replaced_ms: int | None = None

    def alive(self, at_ms: int) -> bool:
        """This version was the stored one at ``at_ms``."""
        if self.imported_ms is not None and at_ms < self.imported_ms:
            return False
        return self.replaced_ms is None or at_ms < self.replaced_ms

    def applies(self, day: date) -> bool:
        if day.isoweekday() != self.weekday:
            return False
        if self.valid_from is not None and day < self.valid_from:
            return False
        return self.valid_to is None or day <= self.valid_to


@dataclass(frozen=True, slots=True)
class Lesson:
    """One meeting of a group on one local date, as UTC milliseconds."""

    group_id: str
    center_id: str
    date: date
    start_ms: int
    end_ms: int
    price_kzt: int
    # The schedule that applies now gives this date another lesson (or none) than the
    # one that stood at the end of the date (or at its approval): judged by the latter.
    changed_late: bool = False


@dataclass(frozen=True, slots=True)
class ScheduleApproval:
    """An operator's approval of a group's schedule, as it stood at ``approved_ms``, for
    the lessons from ``first`` to ``last`` (``qatysu-portal schedule approve``)."""

    group_id: str
    first: date
    last: date
    approved_ms: int
    by: str = ""
    note: str = ""


def local_ms(day: date, at: time, zone: ZoneInfo) -> int:
    """Unix ms of a local wall time; a time skipped or repeated by a change resolves by fold=0."""
    return int(datetime.combine(day, at, tzinfo=zone).timestamp() * 1000)


def local_date(ms: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(ms / 1000, tz=zone).date()


def dates(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def lessons(
    schedule: Iterable[ScheduleEntry],
    first: date,
    last: date,
    zone: ZoneInfo,
    approvals: Iterable[ScheduleApproval] = (),
) -> list[Lesson]:
    """Every lesson from ``first`` to ``last`` (both inclusive), one per group and date.

    ``schedule`` may hold every version of every row (:attr:`ScheduleEntry.imported_ms`,
    :attr:`~ScheduleEntry.replaced_ms`). A date's lesson is the one of the schedule as
    it stood at the end of that date, or at the group's latest approval covering the
    date if that is later; when the current schedule gives the date another lesson or
    none, the lesson is marked :attr:`Lesson.changed_late` (a lesson only the current
    schedule has is taken from it, marked too). When two entries of a group fall on
    the same date, the earlier start wins (the import refuses such overlaps; this keeps
    the rule total anyway).
    """
    by_weekday: dict[int, list[ScheduleEntry]] = {}
    versioned = False
    for entry in schedule:
        by_weekday.setdefault(entry.weekday, []).append(entry)
        versioned = versioned or entry.imported_ms is not None or entry.replaced_ms is not None
    approved: dict[str, list[ScheduleApproval]] = {}
    for a in approvals:
        approved.setdefault(a.group_id, []).append(a)
    out: list[Lesson] = []
    for day in dates(first, last):
        todays = sorted(by_weekday.get(day.isoweekday(), ()), key=lambda e: (e.group_id, e.start))
        now = _pick(todays, day, None)
        if not versioned:
            out.extend(_lesson(e, day, zone) for e in now.values())
            continue
        day_end = local_ms(day + timedelta(days=1), time(0), zone) - 1  # its last ms
        per_group: dict[str, list[ScheduleEntry]] = {}
        for e in todays:
            per_group.setdefault(e.group_id, []).append(e)
        for group, entries in per_group.items():
            at = day_end
            for a in approved.get(group, ()):
                if a.first <= day <= a.last and a.approved_ms > at:
                    at = a.approved_ms
            then = _pick(entries, day, at).get(group)
            current = now.get(group)
            if then is None and current is None:
                continue
            same = (
                then is not None
                and current is not None
                and (then.start, then.end, then.price_kzt, then.center_id)
                == (current.start, current.end, current.price_kzt, current.center_id)
            )
            chosen = then if then is not None else current
            assert chosen is not None
            out.append(_lesson(chosen, day, zone, changed_late=not same))
    return out


def _pick(entries: list[ScheduleEntry], day: date, at_ms: int | None) -> dict[str, ScheduleEntry]:
    """Each group's entry for ``day`` among the versions stored at ``at_ms`` (None: now).

    ``entries`` are sorted by (group, start): the first that applies wins.
    """
    out: dict[str, ScheduleEntry] = {}
    for e in entries:
        if e.group_id in out or not e.applies(day):
            continue
        if e.replaced_ms is not None if at_ms is None else not e.alive(at_ms):
            continue
        out[e.group_id] = e
    return out


def _lesson(
    entry: ScheduleEntry, day: date, zone: ZoneInfo, *, changed_late: bool = False
) -> Lesson:
    return Lesson(
        group_id=entry.group_id,
        center_id=entry.center_id,
        date=day,
        start_ms=local_ms(day, entry.start, zone),
        end_ms=local_ms(day, entry.end, zone),
        price_kzt=entry.price_kzt,
        changed_late=changed_late,
    )


def instant_ms(text: str, zone: ZoneInfo) -> int | None:
    """Unix ms of a stored ``confirmed_at`` (ISO, with or without offset; without one it
    is local to ``zone``); None for ``""`` or text that is no date and time."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return int(moment.timestamp() * 1000)
