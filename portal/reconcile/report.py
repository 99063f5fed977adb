"""Renderers of a reconciliation: JSON (the API's shape), CSV, a rich table, XLSX and HTML.

:func:`as_json` is the contract (docs/reconciliation.md): ``{"from", "to", "rows",
"totals"}``, each row with its evidence. The other formats are views of it.
:data:`RENDERERS` is the one table of formats, read by ``qatysu-portal reconcile``
and by the report API: a new format is one line there.

The views for people speak the reader's language (:class:`ReportOptions`: the words
come from the pages' translations, handed in by the caller): the XLSX has headers,
statuses and reasons in words, real date and number cells; the HTML report likewise;
the CSV keeps its machine column names and status ids but follows the language's
spreadsheet convention (``;``, decimal comma and a UTF-8 BOM for ru and kk).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from portal.reconcile.engine import Result, Row
from portal.reconcile.index import DoorEvent, Read
from portal.reconcile.rules import STATUSES, VERIFIED
from portal.reconcile.totals import totals

if TYPE_CHECKING:
    from jinja2 import Template

# The HTML report's template lives with the pages' templates (one home for HTML).
TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"

CSV_COLUMNS = (
    "child_id",
    "group_id",
    "center_id",
    "date",
    "status",
    "reasons",
    "price_kzt",
    "lesson_start",
    "lesson_end",
    "reads",
    "first_read",
    "confirmed_at",
    "signer",
    "child_name",
    "center_name",
)

# The CSV conventions: "semicolon" is what Excel reads in a Russian or Kazakh locale
# (``;`` between cells, ``,`` in decimals, a BOM so it takes the file as UTF-8);
# "comma" is the portal's CSV as it always was (``,``, no BOM), for scripts and
# English-locale spreadsheets. The language picks one unless the caller does.
CSV_DELIMITERS = ("comma", "semicolon")
BY_CHARACTER = {",": "comma", ";": "semicolon"}  # the CLI's --csv-delimiter
_CSV_BY_LANG = {"en": "comma", "ru": "semicolon", "kk": "semicolon"}


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """How a report is shown: its language, the words of it, and the CSV convention.

    ``words`` are the interface texts of ``lang`` (portal.web.i18n); a missing key
    shows as the key itself. ``delimiter`` is one of :data:`CSV_DELIMITERS`, or None
    for the language's.
    """

    lang: str = "en"
    words: Mapping[str, str] = field(default_factory=dict)
    delimiter: str | None = None
    # Centers' display names by id, for reports whose data holds ids only (the risk queue).
    center_names: Mapping[str, str] = field(default_factory=dict)

    def word(self, key: str) -> str:
        return self.words.get(key, key)

    @property
    def csv_convention(self) -> str:
        return self.delimiter or _CSV_BY_LANG.get(self.lang, "comma")

    def money(self, kzt: int) -> str:
        """``425,500`` in English, ``425 500`` (no-break space) in Russian and Kazakh."""
        text = f"{kzt:,}"
        return text if self.lang == "en" else text.replace(",", "\u00a0")

    def percent(self, share: float | None) -> str:
        if share is None:
            return "—"
        text = f"{share:.1%}"
        return text if self.lang == "en" else text.replace(".", ",")


def _local(ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=zone).isoformat(timespec="seconds")


def _read(read: Read, reasons: tuple[str, ...], zone: ZoneInfo) -> dict[str, Any]:
    return {
        "device_id": read.device_id,
        "seq": read.seq,
        "type": "badge",
        "reader": read.reader,
        "driver": read.driver,
        "uid": read.uid,
        "time_ms": read.time_ms,
        "time": _local(read.time_ms, zone),
        "wall_ms": read.wall_ms,
        "time_trusted": read.trusted,
        "time_proven": read.proven,
        "reasons": list(reasons),
        # What the card proved (docs/cards.md): None for a card not registered as one
        # that proves its reads; ``jump`` counts its reads elsewhere since the last here.
        "card": None
        if not read.card_kind
        else {
            "kind": read.card_kind,
            "check": read.card_check,
            "counter": read.card_counter,
            "jump": read.card_jump,
        },
    }


def _door(door: DoorEvent, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "device_id": door.device_id,
        "seq": door.seq,
        "sensor": door.sensor,
        "state": door.state,
        "time_ms": door.time_ms,
        "time": _local(door.time_ms, zone),
    }


def row_dict(row: Row, zone: ZoneInfo) -> dict[str, Any]:
    lesson = row.lesson
    cov = row.coverage
    heartbeats: dict[str, Any] | None = None
    if cov is not None:
        heartbeats = {
            "window_start": _local(cov.window_start_ms, zone),
            "window_end": _local(cov.window_end_ms, zone),
            "records": cov.records,
            "heartbeats": cov.heartbeats,
            "offline": cov.offline,
            "silences": [
                {"from": _local(a, zone), "to": _local(b, zone), "seconds": (b - a) // 1000}
                for a, b in cov.silences
            ],
        }
    conf = row.confirmation
    return {
        "child_id": row.child_id,
        "group_id": row.group_id,
        "center_id": row.center_id,
        "date": row.date.isoformat(),
        "status": row.status,
        "reasons": list(row.reasons),
        "price_kzt": row.price_kzt,
        "lesson_start": _local(lesson.start_ms, zone) if lesson else None,
        "lesson_end": _local(lesson.end_ms, zone) if lesson else None,
        "confirmed_at": conf.confirmed_at if conf else None,
        "signer": conf.signer if conf else None,
        "evidence": {
            "records": [_read(r, reasons, zone) for r, reasons in row.reads],
            "doors": [_door(d, zone) for d in row.doors],
            "heartbeats": heartbeats,
        },
    }


def as_json(result: Result, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "from": result.first.isoformat(),
        "to": result.last.isoformat(),
        "rows": [row_dict(r, zone) for r in result.rows],
        "totals": totals(result),
    }


def _first_read_ms(row: Row) -> int | None:
    return min((r.time_ms for r, _ in row.reads), default=None)


def _flat(row: Row, zone: ZoneInfo, names: Result) -> list[Any]:
    """A row for the CSV: the columns of :data:`CSV_COLUMNS`, ids and machine words."""
    first = _first_read_ms(row)
    conf = row.confirmation
    return [
        row.child_id,
        row.group_id,
        row.center_id,
        row.date.isoformat(),
        row.status,
        ";".join(row.reasons),
        row.price_kzt,
        _local(row.lesson.start_ms, zone) if row.lesson else "",
        _local(row.lesson.end_ms, zone) if row.lesson else "",
        len(row.reads),
        _local(first, zone) if first is not None else "",
        conf.confirmed_at if conf else "",
        conf.signer if conf else "",
        names.child_names.get(row.child_id, ""),
        names.center_names.get(row.center_id, ""),
    ]


# A spreadsheet reads a text cell starting with one of these as a formula: a child or
# center named "=HYPERLINK(...)" would run in the auditor's Excel (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    """A plain number ("-250", "+7", "3.5"): a spreadsheet reads it as a number, never
    as a formula, so it needs no quote (a name like "-Ali" or "-2+3" is not one)."""
    body = text[1:] if text[:1] in "+-" else text
    whole, _, frac = body.partition(".")
    return whole.isdigit() and (frac == "" or frac.isdigit()) and whole.isascii()


def _csv_cell(value: Any) -> Any:
    """A string cell that a spreadsheet would read as a formula gets a leading quote.

    Numbers (a negative price is still a number), and strings that are plain numbers,
    are written as they are.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


def csv_text(header: Iterable[str], lines: Iterable[list[Any]], options: ReportOptions) -> bytes:
    """A CSV in the options' convention; text cells never start a formula."""
    semicolon = options.csv_convention == "semicolon"
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";" if semicolon else ",", lineterminator="\n")
    writer.writerow(header)
    for line in lines:
        cells = [_csv_cell(v) for v in line]
        if semicolon:  # decimal comma, as a Russian-locale Excel writes and reads it
            cells = [str(v).replace(".", ",") if isinstance(v, float) else v for v in cells]
        writer.writerow(cells)
    return (("\ufeff" if semicolon else "") + out.getvalue()).encode("utf-8")


def as_csv(result: Result, zone: ZoneInfo, options: ReportOptions | None = None) -> bytes:
    rows = (_flat(row, zone, result) for row in result.rows)
    return csv_text(CSV_COLUMNS, rows, options or ReportOptions())


def _center_rows(t: dict[str, Any]) -> Iterable[list[Any]]:
    for c in t["centers"]:
        share = c["share_verified"]
        yield [
            c["center_id"],
            *(c["lessons"][s] for s in STATUSES),
            "" if share is None else f"{share:.1%}",
            c["kzt_at_risk"],
            c["kzt_unverifiable"],
            c["offline_lessons"],
        ]


_CENTER_HEADER = [
    "center",
    *STATUSES,
    "share verified",
    "KZT at risk",
    "KZT unverifiable",
    "offline lessons",
]


def as_table(result: Result, zone: ZoneInfo, width: int = 160) -> str:
    """Totals per center, then every row that is not verified (for a terminal)."""
    from rich.console import Console
    from rich.table import Table

    t = totals(result)
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    centers = Table(title=f"Reconciliation {result.first} .. {result.last}: centers")
    for h in _CENTER_HEADER:
        centers.add_column(h, justify="left" if h == "center" else "right")
    for cells in _center_rows(t):
        centers.add_row(*(str(c) for c in cells))
    console.print(centers)
    rows = Table(title="Rows not verified")
    for h in ("child", "group", "date", "status", "reasons", "KZT", "reads"):
        rows.add_column(h)
    for row in result.rows:
        if row.status != VERIFIED:
            rows.add_row(
                row.child_id,
                row.group_id,
                row.date.isoformat(),
                row.status,
                ", ".join(row.reasons),
                str(row.price_kzt),
                str(len(row.reads)),
            )
    console.print(rows)
    return console.export_text()


# -- XLSX: a workbook an auditor opens in Excel ------------------------------------

# Cell kinds of the XLSX columns: each gets its number format and a width.
_TEXT, _INT, _KZT, _PCT, _DATE, _TIME = "text", "int", "kzt", "pct", "date", "time"
_NUM = "num"  # a figure with two decimals (a risk score)
_FORMATS = {
    _INT: "0",
    _NUM: "0.00",
    _KZT: "#,##0",
    _PCT: "0.0%",
    _DATE: "yyyy-mm-dd",
    _TIME: "yyyy-mm-dd hh:mm",
}
_MIN_WIDTH = {_DATE: 11, _TIME: 17, _KZT: 10, _PCT: 8, _INT: 6, _NUM: 7, _TEXT: 8}
_MAX_WIDTH = 48


def _naive(ms: int | None, zone: ZoneInfo) -> datetime | None:
    """Local wall time without a zone: Excel has no time zones (the header names it)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=zone).replace(tzinfo=None)


def _confirmed(row: Row, zone: ZoneInfo) -> datetime | str | None:
    conf = row.confirmation
    if conf is None:
        return None
    if conf.confirmed_ms is not None:
        return _naive(conf.confirmed_ms, zone)
    try:
        when = datetime.fromisoformat(conf.confirmed_at)
    except ValueError:
        return conf.confirmed_at or None  # as the timesheet gave it
    return when.astimezone(zone).replace(tzinfo=None) if when.tzinfo else when


def _reasons(reasons: Iterable[str], o: ReportOptions) -> str:
    return ", ".join(o.word(r) for r in reasons)


def xlsx_sheet(
    book: Any, title: str, columns: list[tuple[str, str]], lines: Iterable[list[Any]]
) -> None:
    """One sheet: bold frozen header, autofilter, each column's format and width.

    ``columns`` are (header, kind) with kind one of text, int, num, kzt, pct, date, time.
    """
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    sheet = book.create_sheet(title[:31])  # Excel's limit for a sheet name
    sheet.append([h for h, _ in columns])
    widths = [max(len(h), _MIN_WIDTH[k]) for h, k in columns]
    for line in lines:
        sheet.append(line)
        for i, value in enumerate(line):
            if isinstance(value, str):
                widths[i] = max(widths[i], min(len(value), _MAX_WIDTH))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for i, (_, kind) in enumerate(columns, 1):
        letter = get_column_letter(i)
        sheet.column_dimensions[letter].width = min(widths[i - 1], _MAX_WIDTH) + 2
        if kind in _FORMATS:
            for (cell,) in sheet.iter_rows(min_row=2, min_col=i, max_col=i):
                cell.number_format = _FORMATS[kind]
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{max(sheet.max_row, 1)}"
    sheet.print_title_rows = "1:1"


def _status_columns(o: ReportOptions) -> list[tuple[str, str]]:
    return [(o.word(s), _INT) for s in STATUSES]


def as_xlsx(result: Result, zone: ZoneInfo, options: ReportOptions | None = None) -> bytes:
    from openpyxl import Workbook

    o = options or ReportOptions()
    t = totals(result)
    cn, kn = result.center_names, result.child_names
    book = Workbook()
    book.remove(book.active)
    tz = f" ({zone.key})"
    rows_columns = [
        (o.word("child_id"), _TEXT),
        (o.word("child_name"), _TEXT),
        (o.word("group"), _TEXT),
        (o.word("center_id"), _TEXT),
        (o.word("center"), _TEXT),
        (o.word("date"), _DATE),
        (o.word("status"), _TEXT),
        (o.word("reasons"), _TEXT),
        (o.word("price"), _KZT),
        (o.word("lesson_start") + tz, _TIME),
        (o.word("lesson_end") + tz, _TIME),
        (o.word("read_count"), _INT),
        (o.word("first_read") + tz, _TIME),
        (o.word("confirmed_at") + tz, _TIME),
        (o.word("signer"), _TEXT),
    ]
    xlsx_sheet(
        book,
        o.word("all_rows"),
        rows_columns,
        (
            [
                r.child_id,
                kn.get(r.child_id),
                r.group_id,
                r.center_id,
                cn.get(r.center_id),
                r.date,
                o.word(r.status),
                _reasons(r.reasons, o),
                r.price_kzt,
                _naive(r.lesson.start_ms, zone) if r.lesson else None,
                _naive(r.lesson.end_ms, zone) if r.lesson else None,
                len(r.reads),
                _naive(_first_read_ms(r), zone),
                _confirmed(r, zone),
                r.confirmation.signer if r.confirmation else None,
            ]
            for r in result.rows
        ),
    )
    money = [(o.word("kzt_at_risk"), _KZT), (o.word("kzt_unverifiable"), _KZT)]
    xlsx_sheet(
        book,
        o.word("centers"),
        [
            (o.word("center_id"), _TEXT),
            (o.word("center"), _TEXT),
            *_status_columns(o),
            (o.word("share_verified"), _PCT),
            *money,
            (o.word("offline_lessons"), _INT),
        ],
        (
            [
                c["center_id"],
                cn.get(c["center_id"]),
                *(c["lessons"][s] for s in STATUSES),
                c["share_verified"],
                c["kzt_at_risk"],
                c["kzt_unverifiable"],
                c["offline_lessons"],
            ]
            for c in t["centers"]
        ),
    )
    xlsx_sheet(
        book,
        o.word("groups"),
        [
            (o.word("group"), _TEXT),
            (o.word("center_id"), _TEXT),
            (o.word("center"), _TEXT),
            *_status_columns(o),
            (o.word("share_verified"), _PCT),
            *money,
        ],
        (
            [
                g["group_id"],
                g["center_id"],
                cn.get(g["center_id"]),
                *(g["lessons"][s] for s in STATUSES),
                g["share_verified"],
                g["kzt_at_risk"],
                g["kzt_unverifiable"],
            ]
            for g in t["groups"]
        ),
    )
    return xlsx_bytes(book)


def xlsx_bytes(book: Any) -> bytes:
    """The workbook as a file, every text cell stored as text."""
    _strings_as_strings(book)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _strings_as_strings(book: Any) -> None:
    """Every text cell is stored as text: openpyxl turns a string starting with "=" into a
    formula, and a name chosen by whoever registers a child must never run in Excel."""
    for sheet in book.worksheets:
        for line in sheet.iter_rows():
            for cell in line:
                if isinstance(cell.value, str):
                    cell.data_type = "s"


@cache
def report_template(name: str) -> Template:
    """A standalone report's Jinja template (escaping on), loaded once per process."""
    from jinja2 import Environment, FileSystemLoader

    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True).get_template(name)


def as_html(result: Result, zone: ZoneInfo, options: ReportOptions | None = None) -> bytes:
    """A standalone page (no JavaScript, no external files) of totals and rows not verified,
    in the options' language."""
    o = options or ReportOptions()
    t = totals(result)
    return (
        report_template("reconciliation_report.html")
        .render(
            lang=o.lang,
            t=o.word,
            first=result.first.isoformat(),
            last=result.last.isoformat(),
            all=t["all"],
            statuses=STATUSES,
            centers=t["centers"],
            rows=[r for r in result.rows if r.status != VERIFIED],
            child_names=result.child_names,
            center_names=result.center_names,
            money=o.money,
            share=o.percent,
            reasons=lambda rs: _reasons(rs, o),
        )
        .encode("utf-8")
    )


def _table(result: Result, zone: ZoneInfo, options: ReportOptions) -> bytes:
    return as_table(result, zone).encode("utf-8")


def _json(result: Result, zone: ZoneInfo, options: ReportOptions) -> bytes:
    return json.dumps(as_json(result, zone), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Renderer:
    """One report format: how to render it as bytes, its media type and file extension."""

    render: Callable[[Result, ZoneInfo, ReportOptions], bytes]
    media_type: str
    extension: str
    attachment: bool = True  # over HTTP, offered as a file download


# One line per format: the CLI offers all of them, the API those it lists.
RENDERERS: dict[str, Renderer] = {
    "table": Renderer(_table, "text/plain; charset=utf-8", "txt"),
    "csv": Renderer(as_csv, "text/csv; charset=utf-8", "csv"),
    "json": Renderer(_json, "application/json", "json", attachment=False),
    "xlsx": Renderer(
        as_xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"
    ),
    "html": Renderer(as_html, "text/html; charset=utf-8", "html"),
}
FORMATS = tuple(RENDERERS)


def render(result: Result, zone: ZoneInfo, fmt: str, options: ReportOptions | None = None) -> bytes:
    """The report in ``fmt`` (one of :data:`FORMATS`) as bytes ready for a file."""
    renderer = RENDERERS.get(fmt)
    if renderer is None:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    return renderer.render(result, zone, options or ReportOptions())


__all__ = [
    "CSV_DELIMITERS",
    "FORMATS",
    "RENDERERS",
    "Renderer",
    "ReportOptions",
    "as_csv",
    "as_json",
    "csv_text",
    "render",
    "row_dict",
    "xlsx_bytes",
    "xlsx_sheet",
]
