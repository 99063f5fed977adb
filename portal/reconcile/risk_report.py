"""Renderers of the risk queue: JSON (the API's shape), CSV and XLSX (Excel), a standalone
HTML page and a terminal table.

JSON: ``{"from", "to", "entries": [{"center_id", "week", "score", "reasons": [{"name",
"figure", "city", "k", "n", "z", "points", "text"}], "kzt", "kzt_excess", "rows",
"spotchecks": [{"date", "present", "recorded", "confirmed", "note", "by"}]}]}``.
CSV: one line per entry, the reasons and spot checks as text; text cells never
start a formula, and the file follows the language's convention (the
reconciliation CSV's rules: ``;``, decimal comma and a BOM for ru and kk). XLSX and
HTML are in the options' language, with names beside ids, as the reconciliation's.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from portal.reconcile.report import (
    ReportOptions,
    csv_text,
    report_template,
    xlsx_bytes,
    xlsx_sheet,
)
from portal.reconcile.risk import RiskEntry, RiskReason, SpotCheckSeen

CSV_COLUMNS = (
    "rank",
    "center_id",
    "week",
    "score",
    "reasons",
    "kzt",
    "kzt_excess",
    "confirmed_rows",
    "spotchecks",
)


def _reason(r: RiskReason) -> dict[str, Any]:
    return {
        "name": r.name,
        "figure": round(r.figure, 4),
        "city": round(r.city, 4),
        "k": r.k,
        "n": r.n,
        "z": round(r.z, 3),
        "points": r.points,
        "text": r.text,
    }


def _check(c: SpotCheckSeen) -> dict[str, Any]:
    return {
        "date": c.check.date.isoformat(),
        "present": c.check.present,
        "recorded": c.recorded,
        "confirmed": c.confirmed,
        "note": c.check.note,
        "by": c.check.by,
    }


def _check_text(c: SpotCheckSeen) -> str:
    by = f" by {c.check.by}" if c.check.by else ""
    note = f" ({c.check.note})" if c.check.note else ""
    return f"{c.check.date}: {c.check.present} present, device {c.recorded}{by}{note}"


def entry_dict(e: RiskEntry, rank: int) -> dict[str, Any]:
    return {
        "rank": rank,
        "center_id": e.center_id,
        "week": e.week,
        "score": e.score,
        "reasons": [_reason(r) for r in e.reasons],
        "kzt": e.kzt,
        "kzt_excess": e.kzt_excess,
        "rows": e.rows,
        "spotchecks": [_check(c) for c in e.spotchecks],
    }


def as_json(entries: Sequence[RiskEntry], first: date, last: date) -> dict[str, Any]:
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "entries": [entry_dict(e, k) for k, e in enumerate(entries, 1)],
    }


def _flat(e: RiskEntry, rank: int) -> list[Any]:
    return [
        rank,
        e.center_id,
        e.week,
        e.score,
        "; ".join(r.text for r in e.reasons),
        e.kzt,
        e.kzt_excess,
        e.rows,
        "; ".join(_check_text(c) for c in e.spotchecks),
    ]


def as_csv(
    entries: Sequence[RiskEntry], first: date, last: date, options: ReportOptions | None = None
) -> bytes:
    lines = (_flat(e, k) for k, e in enumerate(entries, 1))
    return csv_text(CSV_COLUMNS, lines, options or ReportOptions())


def as_xlsx(
    entries: Sequence[RiskEntry],
    first: date,
    last: date,
    options: ReportOptions | None = None,
) -> bytes:
    """One sheet, one line per center-week: numbers as numbers, KZT formatted."""
    from openpyxl import Workbook

    o = options or ReportOptions()
    names = o.center_names
    book = Workbook()
    book.remove(book.active)
    columns = [
        ("#", "int"),
        (o.word("center_id"), "text"),
        (o.word("center"), "text"),
        (o.word("week"), "text"),
        (o.word("score"), "num"),
        (o.word("risk_reasons"), "text"),
        (o.word("kzt_at_stake"), "kzt"),
        (o.word("kzt_excess"), "kzt"),
        (o.word("confirmed_rows"), "int"),
        (o.word("spotchecks"), "text"),
    ]
    lines = (_flat(e, k) for k, e in enumerate(entries, 1))
    xlsx_sheet(
        book,
        f"{o.word('risk_queue')} {first} {last}",
        columns,
        ([*line[:2], names.get(line[1]), *line[2:]] for line in lines),  # the CSV's + name
    )
    return xlsx_bytes(book)


def as_html(
    entries: Sequence[RiskEntry],
    first: date,
    last: date,
    options: ReportOptions | None = None,
) -> bytes:
    """A standalone page (no script, no external file) of the queue, in the language."""
    o = options or ReportOptions()
    page = report_template("risk_report.html").render(
        lang=o.lang,
        t=o.word,
        first=first.isoformat(),
        last=last.isoformat(),
        entries=list(enumerate(entries, 1)),
        names=o.center_names,
        money=o.money,
        check_text=_check_text,
    )
    return page.encode("utf-8")


def as_table(entries: Sequence[RiskEntry], first: date, last: date, width: int = 160) -> str:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    table = Table(title=f"Risk queue {first} .. {last}")
    for h in ("#", "center", "week", "score", "reasons", "KZT", "KZT excess", "spot checks"):
        table.add_column(h, justify="right" if h in ("#", "score", "KZT", "KZT excess") else "left")
    for k, e in enumerate(entries, 1):
        table.add_row(
            str(k),
            e.center_id,
            e.week,
            f"{e.score:.2f}",
            "\n".join(r.text for r in e.reasons),
            str(e.kzt),
            str(e.kzt_excess),
            "\n".join(_check_text(c) for c in e.spotchecks),
        )
    console.print(table)
    return console.export_text()


Render = Callable[[Sequence[RiskEntry], date, date, ReportOptions], bytes]


def _json(entries: Sequence[RiskEntry], first: date, last: date, _: ReportOptions) -> bytes:
    return json.dumps(as_json(entries, first, last), ensure_ascii=False).encode("utf-8")


def _table(entries: Sequence[RiskEntry], first: date, last: date, _: ReportOptions) -> bytes:
    return as_table(entries, first, last).encode("utf-8")


RENDERERS: dict[str, tuple[Render, str]] = {
    "table": (_table, "text/plain; charset=utf-8"),
    "csv": (as_csv, "text/csv; charset=utf-8"),
    "json": (_json, "application/json"),
    "xlsx": (as_xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "html": (as_html, "text/html; charset=utf-8"),
}
FORMATS = tuple(RENDERERS)


def render(
    entries: Sequence[RiskEntry],
    first: date,
    last: date,
    fmt: str,
    options: ReportOptions | None = None,
) -> bytes:
    renderer = RENDERERS.get(fmt)
    if renderer is None:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    return renderer[0](entries, first, last, options or ReportOptions())


__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "RENDERERS",
    "as_csv",
    "as_html",
    "as_json",
    "as_xlsx",
    "entry_dict",
    "render",
]
