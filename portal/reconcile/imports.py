"""CSV imports (docs/reconciliation.md), parsed and checked without touching the database.

Each parser takes the file's bytes and name plus what the portal already knows
(centers, groups, children) and returns value objects, or raises
:class:`~portal.exceptions.ImportFileError` with one line
``FILE:LINE:COLUMN: message`` for the first bad row, so nothing from a bad
file is applied. Files are UTF-8 with or without BOM (a cp1251 file from an
old Excel is refused with a hint), delimited by ``,`` or ``;`` (sniffed from
the header). Rows that repeat one another exactly are taken once; rows with the
same key and different data are an error.

A schedule row whose lesson is longer than ``lesson_max_min`` is refused unless
the import admits long lessons (``--allow-long``); a ``confirmed_at`` is read
as ISO 8601 with or without an offset (without one it is the portal's local
time) or as ``DD.MM.YYYY HH:MM`` the way Excel writes it, and may be empty (no
time known: such a confirmation is never verified, docs/reconciliation.md).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import TypeVar
from zoneinfo import ZoneInfo

from agent.protocol import normalise_uid
from portal.exceptions import ImportFileError
from portal.reconcile.lessons import ScheduleEntry, instant_ms
from portal.reconcile.model import Confirmation

ROSTER = ("child_id", "badge_uid", "center_id", "group_id")
ROSTER_OPTIONAL = ("child_name",)
SCHEDULE = ("group_id", "center_id", "weekday", "start", "end", "price_kzt")
SCHEDULE_OPTIONAL = ("valid_from", "valid_to")
CONFIRMATIONS = ("child_id", "group_id", "date", "confirmed_at", "signer")


@dataclass(frozen=True, slots=True)
class RosterRow:
    child_id: str
    badge_uid: str
    center_id: str
    group_id: str
    child_name: str = ""


class _Bad(Exception):
    """A field that cannot be read; the caller adds file, line and column."""


def _decode(data: bytes, name: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        head = data.split(b"\n", 1)[0]
        delimiter = b";" if head.count(b";") > head.count(b",") else b","
        col = data[data.rfind(b"\n", 0, exc.start) + 1 : exc.start].count(delimiter) + 1
        raise ImportFileError(
            f"{name}:{line}:{col}: not UTF-8 (byte 0x{data[exc.start]:02x}); "
            "save the file as 'CSV UTF-8' (a cp1251/Windows-1251 file looks like this)"
        ) from exc
    return text


def _table(
    data: bytes, name: str, required: tuple[str, ...], optional: tuple[str, ...]
) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    text = _decode(data, name)
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError(
            f"{name}:1:1: empty file; expected header {','.join(required)}"
        ) from None
    header = [h.strip().lower() for h in header]
    known = set(required) | set(optional)
    for col, h in enumerate(header, 1):
        if h not in known:
            raise ImportFileError(
                f"{name}:1:{col}: unknown column {h!r}; expected {','.join(required)}"
                + (f" (optional {','.join(optional)})" if optional else "")
            )
        if header.index(h) != col - 1:
            raise ImportFileError(f"{name}:1:{col}: column {h!r} appears twice")
    missing = [h for h in required if h not in header]
    if missing:
        raise ImportFileError(
            f"{name}:1:{len(header) + 1}: missing column {missing[0]!r}; "
            f"expected {','.join(required)}"
        )
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise ImportFileError(
                    f"{name}:{line}:{min(len(cells), len(header)) + 1}: {len(cells)} fields, "
                    f"the header has {len(header)} (delimiter {delimiter!r})"
                )
            rows.append((line, {h: c.strip() for h, c in zip(header, cells, strict=True)}))
    except csv.Error as exc:
        raise ImportFileError(f"{name}:{reader.line_num}:1: {exc}") from exc
    return header, rows


T = TypeVar("T")


def _field(
    name: str,
    header: list[str],
    line: int,
    row: dict[str, str],
    col: str,
    parse: Callable[[str], T],
) -> T:
    try:
        return parse(row.get(col, ""))
    except (_Bad, ValueError) as exc:
        raise ImportFileError(f"{name}:{line}:{header.index(col) + 1}: {col}: {exc}") from None


def _required(text: str) -> str:
    if not text:
        raise _Bad("empty")
    return text


def parse_date(text: str) -> date:
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise _Bad(f"{text!r} is not a date (YYYY-MM-DD or DD.MM.YYYY)")


def _optional_date(text: str) -> date | None:
    return parse_date(text) if text else None


def parse_time(text: str) -> time:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        raise _Bad(f"{text!r} is not a local time HH:MM")
    return time(int(m[1]), int(m[2]))


def _datetime(text: str) -> str:
    """A ``confirmed_at`` in one stored form: ISO, seconds, the offset only if given."""
    if not text:
        return ""  # no time known (a paper confirmation typed in)
    for fmt in (
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%d.%m.%Y %H:%M:%S",
        "%d.%m.%Y %H:%M",
    ):
        try:
            return datetime.strptime(text, fmt).isoformat(timespec="seconds")
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text).isoformat(timespec="seconds")
    except ValueError:
        raise _Bad(
            f"{text!r} is not a date and time (YYYY-MM-DD HH:MM, ISO 8601 with or without "
            "offset, or DD.MM.YYYY HH:MM)"
        ) from None


def _weekday(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 7:
        raise _Bad(f"{text!r} is not a weekday 1 (Monday) to 7 (Sunday)")
    return int(text)


def _price(text: str) -> int:
    digits = text.replace(" ", "").replace("\u00a0", "")
    if not digits.isdigit():
        raise _Bad(f"{text!r} is not a whole number of tenge")
    return int(digits)


def _uid(text: str) -> str:
    return normalise_uid(_required(text), what="badge_uid")


K = TypeVar("K")


def _dedupe(name: str, items: list[tuple[int, K, T]], what: str) -> list[T]:
    """Drop exact repeats; a repeated key with other data is an error naming both lines."""
    seen: dict[K, tuple[int, T]] = {}
    out: list[T] = []
    for line, key, value in items:
        if key in seen:
            first_line, first = seen[key]
            if first != value:
                raise ImportFileError(
                    f"{name}:{line}:1: {what} {key} repeats line {first_line} with other data"
                )
            continue
        seen[key] = (line, value)
        out.append(value)
    return out


def parse_roster(
    data: bytes, name: str, *, centers: Collection[str], groups: Mapping[str, str]
) -> list[RosterRow]:
    """Roster rows; ``groups`` maps each known group to its center."""
    header, rows = _table(data, name, ROSTER, ROSTER_OPTIONAL)
    items: list[tuple[int, tuple[str, str, str], RosterRow]] = []
    for line, row in rows:
        child = _field(name, header, line, row, "child_id", _required)
        uid = _field(name, header, line, row, "badge_uid", _uid)
        center = _field(name, header, line, row, "center_id", _required)
        group = _field(name, header, line, row, "group_id", _required)
        if center not in centers:
            raise ImportFileError(
                f"{name}:{line}:{header.index('center_id') + 1}: center_id: unknown center "
                f"{center!r} (add it with 'qatysu-portal center add')"
            )
        if groups.get(group) != center:
            where = f"belongs to center {groups[group]!r}" if group in groups else "is unknown"
            raise ImportFileError(
                f"{name}:{line}:{header.index('group_id') + 1}: group_id: group {group!r} "
                f"{where} (import the schedule first)"
            )
        items.append(
            (
                line,
                (child, uid, group),
                RosterRow(child, uid, center, group, row.get("child_name", "")),
            )
        )
    out = _dedupe(name, items, "child, badge and group")
    owners: dict[str, tuple[int, str]] = {}
    for line, (child, uid, _), _row in items:
        if uid in owners and owners[uid][1] != child:
            raise ImportFileError(
                f"{name}:{line}:{header.index('badge_uid') + 1}: badge_uid {uid} is already "
                f"the badge of child {owners[uid][1]!r} (line {owners[uid][0]})"
            )
        owners.setdefault(uid, (line, child))
    return out


def parse_schedule(
    data: bytes,
    name: str,
    *,
    centers: Collection[str],
    groups: Mapping[str, str],
    lesson_max_min: int = 180,
    allow_long: bool = False,
) -> list[ScheduleEntry]:
    """Schedule entries; a group may not move to another center, and a lesson longer
    than ``lesson_max_min`` minutes is refused unless ``allow_long``."""
    header, rows = _table(data, name, SCHEDULE, SCHEDULE_OPTIONAL)
    items: list[tuple[int, tuple[str, int, date | None], ScheduleEntry]] = []
    owner: dict[str, str] = dict(groups)
    for line, row in rows:
        group = _field(name, header, line, row, "group_id", _required)
        center = _field(name, header, line, row, "center_id", _required)
        if center not in centers:
            raise ImportFileError(
                f"{name}:{line}:{header.index('center_id') + 1}: center_id: unknown center "
                f"{center!r} (add it with 'qatysu-portal center add')"
            )
        if owner.setdefault(group, center) != center:
            raise ImportFileError(
                f"{name}:{line}:{header.index('center_id') + 1}: center_id: group {group!r} "
                f"belongs to center {owner[group]!r}"
            )
        entry = ScheduleEntry(
            group_id=group,
            center_id=center,
            weekday=_field(name, header, line, row, "weekday", _weekday),
            start=_field(name, header, line, row, "start", parse_time),
            end=_field(name, header, line, row, "end", parse_time),
            price_kzt=_field(name, header, line, row, "price_kzt", _price),
            valid_from=_field(name, header, line, row, "valid_from", _optional_date),
            valid_to=_field(name, header, line, row, "valid_to", _optional_date),
        )
        if entry.end <= entry.start:
            raise ImportFileError(
                f"{name}:{line}:{header.index('end') + 1}: end: {entry.end:%H:%M} is not after "
                f"start {entry.start:%H:%M}"
            )
        minutes = (entry.end.hour - entry.start.hour) * 60 + entry.end.minute - entry.start.minute
        if minutes > lesson_max_min and not allow_long:
            raise ImportFileError(
                f"{name}:{line}:{header.index('end') + 1}: end: a lesson of {minutes} min "
                f"({entry.start:%H:%M}-{entry.end:%H:%M}) is longer than lesson_max_min "
                f"({lesson_max_min}); import with --allow-long if it is real"
            )
        if entry.valid_from and entry.valid_to and entry.valid_to < entry.valid_from:
            raise ImportFileError(
                f"{name}:{line}:{header.index('valid_to') + 1}: valid_to: before valid_from"
            )
        items.append((line, (group, entry.weekday, entry.valid_from), entry))
    return _dedupe(name, items, "group, weekday and valid_from")


def parse_confirmations(
    data: bytes,
    name: str,
    *,
    children: Mapping[str, Collection[str]],
    groups: Mapping[str, str],
    zone: ZoneInfo | None = None,
) -> list[Confirmation]:
    """Confirmations; ``children`` maps each rostered child to its groups. With ``zone``
    (the portal's), each gets its ``confirmed_ms``."""
    header, rows = _table(data, name, CONFIRMATIONS, ())
    items: list[tuple[int, tuple[str, str, date], Confirmation]] = []
    for line, row in rows:
        child = _field(name, header, line, row, "child_id", _required)
        group = _field(name, header, line, row, "group_id", _required)
        day = _field(name, header, line, row, "date", parse_date)
        at = _field(name, header, line, row, "confirmed_at", _datetime)
        signer = _field(name, header, line, row, "signer", _required)
        if group not in groups:
            raise ImportFileError(
                f"{name}:{line}:{header.index('group_id') + 1}: group_id: unknown group {group!r}"
            )
        if child not in children:
            raise ImportFileError(
                f"{name}:{line}:{header.index('child_id') + 1}: child_id: unknown child "
                f"{child!r} (import the roster first)"
            )
        if group not in children[child]:
            raise ImportFileError(
                f"{name}:{line}:{header.index('group_id') + 1}: group_id: child {child!r} is "
                f"not in group {group!r}"
            )
        ms = instant_ms(at, zone) if zone is not None else None
        items.append((line, (child, group, day), Confirmation(child, group, day, at, signer, ms)))
    return _dedupe(name, items, "child, group and date")
