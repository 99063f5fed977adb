"""Renderers of a reconciliation: JSON (the API's shape), CSV, a rich table, XLSX and HTML.

:func:`as_json` is the contract (docs/reconciliation.md): ``{"from", "to", "rows",
"totals"}``, each row with its evidence. The other formats are views of it.
:data:`RENDERERS` is the one table of formats, read by ``qatysu-portal reconcile``
and by the report API: a new format is one line there.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from portal.reconcile.engine import Result, Row
from portal.reconcile.index import DoorEvent, Read
from portal.reconcile.rules import STATUSES, VERIFIED
from portal.reconcile.totals import totals

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
)


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


def _flat(row: Row, zone: ZoneInfo) -> list[Any]:
    first = min((r.time_ms for r, _ in row.reads), default=None)
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
    ]


# A spreadsheet reads a text cell starting with one of these as a formula: a child or
# center named "=HYPERLINK(...)" would run in the auditor's Excel (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """A string cell that a spreadsheet would read as a formula gets a leading quote.

    Only strings: numbers (a negative price is still a number) are written as they are.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def as_csv(result: Result, zone: ZoneInfo) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in result.rows:
        writer.writerow([_csv_cell(v) for v in _flat(row, zone)])
    return out.getvalue()


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


def _strings_as_strings(book: Any) -> None:
    """Every text cell is stored as text: openpyxl turns a string starting with "=" into a
    formula, and a name chosen by whoever registers a child must never run in Excel."""
    for sheet in book.worksheets:
        for line in sheet.iter_rows():
            for cell in line:
                if isinstance(cell.value, str):
                    cell.data_type = "s"


def as_xlsx(result: Result, zone: ZoneInfo) -> bytes:
    from openpyxl import Workbook

    t = totals(result)
    book = Workbook()
    sheet = book.active
    sheet.title = "Rows"
    sheet.append(list(CSV_COLUMNS))
    for row in result.rows:
        sheet.append(_flat(row, zone))
    centers = book.create_sheet("Centers")
    centers.append(_CENTER_HEADER)
    for cells in _center_rows(t):
        centers.append(cells)
    groups = book.create_sheet("Groups")
    groups.append(["group", "center", *STATUSES, "KZT at risk", "KZT unverifiable"])
    for g in t["groups"]:
        groups.append(
            [
                g["group_id"],
                g["center_id"],
                *(g["lessons"][s] for s in STATUSES),
                g["kzt_at_risk"],
                g["kzt_unverifiable"],
            ]
        )
    _strings_as_strings(book)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def as_html(result: Result, zone: ZoneInfo) -> str:
    """A standalone page (no JavaScript, no external files) of totals and rows not verified."""
    from jinja2 import Environment, FileSystemLoader

    t = totals(result)
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    return env.get_template("reconciliation_report.html").render(
        first=result.first.isoformat(),
        last=result.last.isoformat(),
        all=t["all"],
        header=_CENTER_HEADER,
        centers=list(_center_rows(t)),
        rows=[r for r in result.rows if r.status != VERIFIED],
        share=lambda s: "—" if s is None else f"{s:.1%}",
    )


def _utf8(text: Callable[[Result, ZoneInfo], str]) -> Callable[[Result, ZoneInfo], bytes]:
    return lambda result, zone: text(result, zone).encode("utf-8")


def _json(result: Result, zone: ZoneInfo) -> bytes:
    return json.dumps(as_json(result, zone), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Renderer:
    """One report format: how to render it as bytes, its media type and file extension."""

    render: Callable[[Result, ZoneInfo], bytes]
    media_type: str
    extension: str
    attachment: bool = True  # over HTTP, offered as a file download


# One line per format: the CLI offers all of them, the API those it lists.
RENDERERS: dict[str, Renderer] = {
    "table": Renderer(_utf8(as_table), "text/plain; charset=utf-8", "txt"),
    "csv": Renderer(_utf8(as_csv), "text/csv; charset=utf-8", "csv"),
    "json": Renderer(_json, "application/json", "json", attachment=False),
    "xlsx": Renderer(
        as_xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"
    ),
    "html": Renderer(_utf8(as_html), "text/html; charset=utf-8", "html"),
}
FORMATS = tuple(RENDERERS)


def render(result: Result, zone: ZoneInfo, fmt: str) -> bytes:
    """The report in ``fmt`` (one of :data:`FORMATS`) as bytes ready for a file."""
    renderer = RENDERERS.get(fmt)
    if renderer is None:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    return renderer.render(result, zone)


__all__ = ["FORMATS", "RENDERERS", "Renderer", "as_csv", "as_json", "render", "row_dict"]
