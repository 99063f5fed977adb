"""The report API and the import API (the pages are tested in tests/web)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from portal.app import create_app
from portal.reconcile.store import apply_import
from portal.registry import create_admin_token
from portal.settings import Settings
from portal.state import Portal, open_portal
from portal.synthetic.feed import IngestUplink
from portal.synthetic.generator import City, CityConfig, generate
from tests.portal.support import LiveServer

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A portal holding a small generated city, served by uvicorn on 127.0.0.1."""
    portal: Portal = open_portal(
        Settings(data_dir=tmp_path_factory.mktemp("web") / "data", cookie_secure=False)
    )
    config = CityConfig(
        centers=2, days=7, seed=11, injected=0.4, upload_s=600, first=date(2024, 6, 3)
    )
    city: City
    city, _ = generate(config, IngestUplink(portal.engine, portal.key, now=T0))
    for kind, data in (
        ("schedule", city.schedule_csv()),
        ("roster", city.roster_csv()),
        ("confirmations", city.confirmations_csv()),
    ):
        apply_import(portal.engine, kind, data, f"{kind}.csv", now=T0)
    server = LiveServer(create_app(portal.settings, portal=portal))
    server.start()
    yield {
        "url": server.url,
        "city": city,
        "portal": portal,
        "auditor": create_admin_token(portal.engine, "aud", "auditor", now=T0),
        "operator": create_admin_token(portal.engine, "op", "operator", now=T0),
        "period": f"from={config.first}&to={city.last}",
    }
    server.stop()
    portal.close()


def test_report_downloads_with_the_page_session_in_its_language(site: dict[str, Any]) -> None:
    """The pages' download links: the session cookie alone, every format, the language."""
    from openpyxl import load_workbook

    base = f"/api/v1/reports/reconciliation?{site['period']}"
    with httpx.Client(base_url=site["url"], timeout=60) as browser:
        assert browser.get(base + "&format=xlsx").status_code == 401
        login = browser.post("/login", data={"token": site["auditor"], "next": "/audit"})
        assert login.status_code in (200, 303), login.text[:300]
        answers = {f: browser.get(f"{base}&format={f}") for f in ("json", "csv", "xlsx", "html")}
        assert {f: a.status_code for f, a in answers.items()} == dict.fromkeys(answers, 200)
        total = len(answers["json"].json()["rows"])
        # The portal's language (ru by default): ; and a BOM, as Excel in Russian reads it.
        csv_body = answers["csv"].content
        assert csv_body.startswith("\ufeff".encode())
        lines = list(csv.reader(io.StringIO(csv_body.decode("utf-8-sig")), delimiter=";"))
        assert len(lines) == total + 1 and lines[0][0] == "child_id"
        disposition = answers["xlsx"].headers["content-disposition"]
        assert disposition == (
            f'attachment; filename="reconciliation-{site["city"].config.first}-'
            f'{site["city"].last}.xlsx"'
        )
        book = load_workbook(io.BytesIO(answers["xlsx"].content))
        assert book.sheetnames == ["Все занятия", "Центры", "Группы"]
        assert book.worksheets[0].max_row == total + 1
        assert '<html lang="ru">' in answers["html"].text
        assert "attachment" in answers["html"].headers["content-disposition"]
        # ?lang= as on the pages; and the session keeps the page's choice.
        english = browser.get(f"{base}&format=html&lang=en").text
        assert '<html lang="en">' in english and "Lessons not verified" in english
        browser.get("/audit?lang=kk")
        kazakh = browser.get(f"{base}&format=csv").content
        assert kazakh.startswith("\ufeff".encode())
        comma = browser.get(f"{base}&format=csv&delimiter=comma&lang=kk").content
        assert not comma.startswith("\ufeff".encode()) and comma.count(b"\n") == total + 1
        risk = browser.get(f"/api/v1/reports/risk?{site['period']}&format=csv")
        assert risk.status_code == 200 and risk.content.startswith("\ufeff".encode())
        assert browser.get(f"{base}&format=table").status_code == 400
        assert browser.get(f"{base}&format=csv&delimiter=tab").status_code == 400


def _get(site: dict[str, Any], path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(site["url"] + path, headers=headers, timeout=60)


def test_report_json_and_csv(site: dict[str, Any]) -> None:
    path = f"/api/v1/reports/reconciliation?{site['period']}"
    assert _get(site, path).status_code == 401
    doc = _get(site, path, site["auditor"]).json()
    assert set(doc) == {"from", "to", "rows", "totals"}
    statuses = {r["status"] for r in doc["rows"]}
    assert {"verified", "suspect"} <= statuses
    assert doc["totals"]["centers"][0]["center_id"] in {"C001", "C002"}
    text = _get(site, path + "&format=csv&delimiter=comma", site["auditor"]).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(doc["rows"])
    one = _get(site, path + "&center=C002", site["auditor"]).json()
    assert {r["center_id"] for r in one["rows"]} == {"C002"}


def test_import_api_needs_an_operator_and_reports_bad_rows(site: dict[str, Any]) -> None:
    url = site["url"] + "/api/v1/admin/imports/schedule?name=s.csv"
    body = b"group_id,center_id,weekday,start,end,price_kzt\nC001-G9,C001,9,15:00,16:00,100\n"
    as_auditor = httpx.post(
        url, content=body, headers={"Authorization": f"Bearer {site['auditor']}"}
    )
    assert as_auditor.status_code == 403
    bad = httpx.post(url, content=body, headers={"Authorization": f"Bearer {site['operator']}"})
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("s.csv:2:3: weekday")
    again = httpx.post(
        url,
        content=site["city"].schedule_csv(),
        headers={"Authorization": f"Bearer {site['operator']}"},
    )
    assert again.status_code == 200
    assert (again.json()["added"], again.json()["changed"]) == (0, 0)
