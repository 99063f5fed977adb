"""``qatysu-portal spotcheck add`` and ``risk``, and ``GET /api/v1/reports/risk``, end to end."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from portal.app import create_app
from portal.cli import main
from portal.db.schema import centers
from portal.exceptions import NotFoundError, PortalConfigError
from portal.reconcile.risk import SpotCheck
from portal.reconcile.risk_store import add_spotcheck, load_spotchecks
from portal.reconcile.store import apply_import
from portal.registry import add_center, create_admin_token
from portal.settings import Settings
from portal.state import Portal, open_portal
from portal.synthetic.feed import IngestUplink
from portal.synthetic.generator import CityConfig, generate

T0 = 1_700_000_000_000
FIRST = date(2024, 2, 26)  # a Monday


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("risk")
    portal = open_portal(Settings(data_dir=root / "data", cookie_secure=False))
    config = CityConfig(centers=2, days=7, seed=21, injected=0.3, upload_s=3600, first=FIRST)
    city, _ = generate(config, IngestUplink(portal.engine, portal.key, now=T0))
    for kind, data in (
        ("schedule", city.schedule_csv()),
        ("roster", city.roster_csv()),
        ("confirmations", city.confirmations_csv()),
    ):
        apply_import(portal.engine, kind, data, f"{kind}.csv", now=T0)
    # A center id from before ids were restricted (add_center refuses it now): the
    # exports must still defuse it.
    with portal.engine.begin() as conn:
        conn.execute(
            insert(centers).values(center_id="=HYPERLINK(1)", name="formula", created_ms=T0)
        )
    auditor = create_admin_token(portal.engine, "aud", "auditor", now=T0)
    portal.close()
    return {
        "data": root / "data",
        "root": root,
        "city": city,
        "auditor": auditor,
        "period": ["--from", FIRST.isoformat(), "--to", city.last.isoformat()],
    }


def _cli(d: dict[str, Any], *args: str) -> int:
    return main(["--data-dir", str(d["data"]), *args])


def test_spotcheck_add_then_risk_shows_it_with_the_device_count(
    data_dir: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    day = "2024-02-28"  # a Wednesday: every center has lessons
    code = _cli(
        data_dir, "spotcheck", "add", "C001", day, "--present", "7", "--note", "ok", "--by", "Aida"
    )
    assert code == 0
    assert capsys.readouterr().out.strip().endswith("C001 2024-02-28: 7 present")
    assert _cli(data_dir, "risk", *data_dir["period"], "--format", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"from", "to", "entries"}
    entries = doc["entries"]
    assert {e["center_id"] for e in entries} >= {"C001", "C002"}
    assert {e["week"] for e in entries} == {"2024-W09"}  # Monday to Sunday
    assert [e["score"] for e in entries] == sorted((e["score"] for e in entries), reverse=True)
    assert all(
        set(r) >= {"name", "figure", "city", "points"} for e in entries for r in e["reasons"]
    )
    entry = next(e for e in entries if (e["center_id"], e["week"]) == ("C001", "2024-W09"))
    (check,) = entry["spotchecks"]
    assert (check["date"], check["present"], check["note"], check["by"]) == (day, 7, "ok", "Aida")
    city = data_dir["city"]
    confirmed = {
        c.child_id
        for c in city.confirmations
        if c.date == date(2024, 2, 28) and c.group_id.startswith("C001-")
    }
    assert check["recorded"] > 0 and check["confirmed"] <= len(confirmed)


def test_risk_csv_and_table_files(
    data_dir: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(data_dir, "spotcheck", "add", "=HYPERLINK(1)", "2024-02-27", "--present", "0") == 0
    out = data_dir["root"] / "risk.csv"
    assert _cli(data_dir, "risk", *data_dir["period"], "--format", "csv", "--output", str(out)) == 0
    assert out.read_bytes().startswith("\ufeffrank;".encode())  # the portal's ru: Excel's
    csv_args = ["--format", "csv", "--csv-delimiter", ","]
    assert _cli(data_dir, "risk", *data_dir["period"], *csv_args, "--output", str(out)) == 0
    assert "center-weeks" in capsys.readouterr().err
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows and rows[0]["rank"] == "1"
    assert "'=HYPERLINK(1)" in {r["center_id"] for r in rows}  # never a formula in Excel
    assert not any(v.startswith("=") for r in rows for v in r.values())
    table = data_dir["root"] / "risk.txt"
    assert _cli(data_dir, "risk", *data_dir["period"], "--output", str(table)) == 0
    assert "Risk queue" in table.read_text()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["C999", "2024-02-28", "--present", "3"], 2, "center 'C999' is not registered"),
        (["C001", "28.02.2024", "--present", "3"], 2, "'28.02.2024' is not a date YYYY-MM-DD"),
        (["C001", "2024-02-28", "--present", "-1"], 2, "--present: -1 is not a count"),
        (["C001", "2024-02-28", "--present", "many"], 2, "--present: 'many' is not a count"),
    ],
)
def test_a_bad_spotcheck_is_one_line_and_stores_nothing(
    data_dir: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    portal = open_portal(Settings(data_dir=data_dir["data"]))
    try:
        before = load_spotchecks(portal.engine, date(2000, 1, 1), date(2100, 1, 1))
        assert _cli(data_dir, "spotcheck", "add", *args) == code
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert load_spotchecks(portal.engine, date(2000, 1, 1), date(2100, 1, 1)) == before
    finally:
        portal.close()


def test_risk_rejects_a_reversed_or_too_long_period(
    data_dir: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    for first, last, message in (
        ("2024-03-02", "2024-03-01", "--to: 2024-03-01 is before --from 2024-03-02"),
        ("2023-01-01", "2024-03-01", "--to: the queue covers at most 366 days"),
        ("2024-02-30", "2024-03-01", "--from: '2024-02-30' is not a date YYYY-MM-DD"),
    ):
        assert _cli(data_dir, "risk", "--from", first, "--to", last) == 2
        assert capsys.readouterr().err.strip().splitlines() == [f"qatysu-portal: error: {message}"]


def test_risk_api_json_csv_auth_and_bad_dates(data_dir: dict[str, Any]) -> None:
    portal = open_portal(Settings(data_dir=data_dir["data"], cookie_secure=False))
    try:
        with TestClient(create_app(portal.settings, portal=portal)) as http:
            auth = {"Authorization": f"Bearer {data_dir['auditor']}"}
            city = data_dir["city"]
            path = f"/api/v1/reports/risk?from={FIRST}&to={city.last}"
            assert http.get(path).status_code == 401
            doc = http.get(path, headers=auth).json()
            assert (doc["from"], doc["to"]) == (FIRST.isoformat(), city.last.isoformat())
            assert doc["entries"][0]["rank"] == 1
            assert set(doc["entries"][0]) >= {
                "center_id", "week", "score", "reasons", "kzt", "spotchecks"
            }  # fmt: skip
            answer = http.get(path + "&format=csv&delimiter=comma", headers=auth)
            assert answer.headers["content-type"].startswith("text/csv")
            assert "attachment" in answer.headers["content-disposition"]
            assert len(list(csv.DictReader(io.StringIO(answer.text)))) == len(doc["entries"])
            bad = http.get(f"/api/v1/reports/risk?from=2024-02-30&to={city.last}", headers=auth)
            assert bad.status_code == 400
            assert bad.json()["detail"] == "from: '2024-02-30' is not a date YYYY-MM-DD"
            reversed_ = http.get("/api/v1/reports/risk?from=2024-03-02&to=2024-03-01", headers=auth)
            assert reversed_.status_code == 400
            too_long = http.get("/api/v1/reports/risk?from=2023-01-01&to=2024-03-01", headers=auth)
            assert too_long.status_code == 400 and "366" in too_long.json()["detail"]
            page = http.get(f"/audit/risk?from={FIRST}&to={city.last}&lang=en", headers=auth)
            assert page.status_code == 200 and "Risk queue" in page.text
            assert "<script" not in page.text.lower()
            top = doc["entries"][0]
            assert f'</a> <span class="id">{top["center_id"]}</span>' in page.text
            assert http.get(f"/audit/risk?from={FIRST}&to={city.last}").status_code in (303, 401)
    finally:
        portal.close()


def test_spotchecks_are_stored_and_read_back_on_every_back_end(store: Portal) -> None:
    add_center(store.engine, "C1", "Центр", now=T0)
    check = SpotCheck("C1", date(2024, 4, 3), 11, "Жанна: всё в порядке", "Инспектор", T0)
    number = add_spotcheck(store.engine, check, now=T0)
    assert number >= 1
    with pytest.raises(NotFoundError, match="center 'C2' is not registered"):
        add_spotcheck(store.engine, replace(check, center_id="C2"), now=T0)
    with pytest.raises(PortalConfigError, match="--present"):
        add_spotcheck(store.engine, replace(check, present=10_001), now=T0)
    assert load_spotchecks(store.engine, date(2024, 4, 1), date(2024, 4, 30)) == [check]
    assert load_spotchecks(store.engine, date(2024, 5, 1), date(2024, 5, 30)) == []


def test_risk_api_xlsx_and_html_in_the_language_with_names(data_dir: dict[str, Any]) -> None:
    from openpyxl import load_workbook

    assert _cli(data_dir, "spotcheck", "add", "=HYPERLINK(1)", "2024-02-27", "--present", "0") == 0
    portal = open_portal(Settings(data_dir=data_dir["data"], cookie_secure=False))
    try:
        with TestClient(create_app(portal.settings, portal=portal)) as http:
            auth = {"Authorization": f"Bearer {data_dir['auditor']}"}
            path = f"/api/v1/reports/risk?from={FIRST}&to={data_dir['city'].last}"
            entries = http.get(path, headers=auth).json()["entries"]
            book = http.get(path + "&format=xlsx&lang=ru", headers=auth)
            assert book.status_code == 200 and "attachment" in book.headers["content-disposition"]
            sheet = load_workbook(io.BytesIO(book.content)).worksheets[0]
            header = [c.value for c in sheet[1]]
            assert header[:5] == ["#", "ID центра", "Центр", "Неделя", "Балл"]
            lines = list(sheet.iter_rows(min_row=2, values_only=True))
            assert len(lines) == len(entries)
            first = lines[0]
            assert first[0] == 1 and isinstance(first[4], int | float)  # numbers, not text
            assert first[1] == entries[0]["center_id"] and first[6] == entries[0]["kzt"]
            formula = [line for line in lines if line[1] == "=HYPERLINK(1)"]
            assert formula and formula[0][2] == "formula"  # the name beside the id
            cell = next(c for c in sheet["B"] if c.value == "=HYPERLINK(1)")
            assert cell.data_type == "s"  # text, never a formula Excel would run
            page = http.get(path + "&format=html&lang=kk", headers=auth)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert '<html lang="kk">' in page.text and "Тексеру кезегі" in page.text
            assert "<script" not in page.text.lower()
            assert page.text.count("<tr>") == len(entries) + 1
    finally:
        portal.close()


def test_risk_xlsx_and_html_files_from_the_cli(data_dir: dict[str, Any]) -> None:
    from openpyxl import load_workbook

    book, page = data_dir["root"] / "risk.xlsx", data_dir["root"] / "risk.html"
    assert (
        _cli(data_dir, "risk", *data_dir["period"], "--format", "xlsx", "--output", str(book)) == 0
    )
    assert load_workbook(book).worksheets[0]["A1"].value == "#"
    assert (
        _cli(data_dir, "risk", *data_dir["period"], "--format", "html", "--output", str(page)) == 0
    )
    assert page.read_text(encoding="utf-8").startswith("<!doctype html>")
