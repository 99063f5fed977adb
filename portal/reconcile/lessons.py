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


def load_zone(name: str) -> ZoneInfo:
    """The portal's time zone; raises :class:`PortalConfigError` for stale or missing data."""
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
    schedule: Iterable[ScheduleEntry], first: date, last: date, zone: ZoneInfo
) -> list[Lesson]:
    """Every lesson from ``first`` to ``last`` (both inclusive), one per group and date.

    When two entries of a group fall on the same date, the earlier start wins
    (the import refuses such overlaps; this keeps the rule total anyway).
    """
    by_weekday: dict[int, list[ScheduleEntry]] = {}
    for entry in schedule:
        by_weekday.setdefault(entry.weekday, []).append(entry)
    out: list[Lesson] = []
    for day in dates(first, last):
        taken: set[str] = set()
        todays = sorted(by_weekday.get(day.isoweekday(), ()), key=lambda e: (e.group_id, e.start))
        for entry in todays:
            if entry.group_id in taken or not entry.applies(day):
                continue
            taken.add(entry.group_id)
            out.append(
                Lesson(
                    group_id=entry.group_id,
                    center_id=entry.center_id,
                    date=day,
                    start_ms=local_ms(day, entry.start, zone),
                    end_ms=local_ms(day, entry.end, zone),
                    price_kzt=entry.price_kzt,
                )
            )
    return out
