"""The report API, the import API and the auditor pages (in a real headless Chromium)."""

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
from tests.support.tools import missing

from .cdp import CHROMIUM, Browser

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


def test_pages_carry_no_script(site: dict[str, Any]) -> None:
    for path in (f"/audit?{site['period']}", "/audit/centers/C001", "/audit/devices"):
        page = _get(site, path, site["auditor"])
        assert page.status_code == 200, path
        assert "<script" not in page.text.lower()
        assert 'name="viewport"' in page.text


def test_language_by_header_and_switch(site: dict[str, Any]) -> None:
    auth = {"Authorization": f"Bearer {site['auditor']}"}
    ru = httpx.get(site["url"] + "/audit", headers={**auth, "Accept-Language": "ru-RU,ru;q=0.9"})
    assert "Сверка посещаемости" in ru.text and '<html lang="ru">' in ru.text
    kk = httpx.get(site["url"] + "/audit?lang=kk", headers=auth)
    assert "Қош келдіңіз" in kk.text
    en = httpx.get(site["url"] + "/audit", headers={**auth, "Accept-Language": "en-GB"})
    assert "Attendance reconciliation" in en.text


def test_auditor_pages_in_chromium(site: dict[str, Any]) -> None:
    if not CHROMIUM.exists():
        missing(f"Debian's chromium is not installed at {CHROMIUM} (make test installs it as root)")
    browser = Browser(lang="en-US")
    try:
        browser.goto(site["url"] + "/login")
        browser.js(f"document.querySelector('input[name=token]').value = {site['auditor']!r}")
        browser.click("form[action='/login'] button[type=submit]")
        browser.goto(site["url"] + f"/audit?{site['period']}")
        assert browser.js("document.documentElement.lang") == "en"
        assert "KZT at risk" in browser.js("document.body.innerText")
        assert browser.js("document.querySelectorAll('#centers a').length") == 2
        browser.click("#centers a")
        assert browser.js("location.pathname").startswith("/audit/centers/C00")
        text = browser.js("document.body.innerText")
        assert "Groups" in text and "Lessons" in text
        browser.screenshot(ARTIFACTS / "reconcile-center.png")
        browser.screenshot(
            ARTIFACTS / "reconcile-center-phone.png", width=390, height=844, mobile=True
        )
        # The phone layout fits: the page itself does not scroll sideways.
        assert browser.js("document.documentElement.scrollWidth") <= 390 + 1
        browser.screenshot(ARTIFACTS / "reconcile-center.png")  # back to desktop size
        browser.click("#lessons tr.suspect a.evidence")
        assert "/lessons/" in browser.js("location.pathname")
        text = browser.js("document.body.innerText")
        assert "Device coverage" in text and "Reasons" in text
        assert browser.js("document.querySelectorAll('table.records tr').length") > 1
        browser.click("a[hreflang=ru]")
        assert browser.js("document.documentElement.lang") == "ru"
        assert "Связь с устройством" in browser.js("document.body.innerText")
        browser.goto(site["url"] + "/audit/devices")  # the choice stays in the session
        assert browser.js("document.documentElement.lang") == "ru"
        assert "Устройства" in browser.js("document.body.innerText")
    finally:
        browser.close()


def test_centers_page_totals_match_the_report(site: dict[str, Any]) -> None:
    doc = _get(site, f"/api/v1/reports/reconciliation?{site['period']}", site["auditor"]).json()
    page = _get(site, f"/audit?{site['period']}&lang=en", site["auditor"]).text
    assert f'<strong id="kzt-at-risk">{doc["totals"]["all"]["kzt_at_risk"]}</strong>' in page
    assert doc["totals"]["all"]["kzt_at_risk"] > 0
    for c in doc["totals"]["centers"]:
        assert f">{c['center_id']}</a>" in page


def test_devices_page_shows_last_seen_backlog_and_integrity_events(site: dict[str, Any]) -> None:
    page = _get(site, "/audit/devices?lang=en", site["auditor"]).text
    for d in site["city"].devices:
        assert f"<td>{d.device_id}</td>" in page
    assert "Last seen" in page and "Backlog" in page and ">never<" not in page
    assert "chain_hole" in site["city"].injections.values()
    events_table = page.split('id="events"', 1)[1]
    assert ">gap<" in events_table and ">none<" not in events_table  # the declared hole


def test_the_language_setting_applies_when_the_browser_says_nothing(site: dict[str, Any]) -> None:
    portal: Portal = site["portal"]
    english = open_portal(portal.settings.with_(language="en"))
    server = LiveServer(create_app(english.settings, portal=english))
    server.start()
    try:
        auth = {"Authorization": f"Bearer {site['auditor']}"}
        plain = httpx.get(server.url + "/audit", headers=auth, timeout=60)
        assert '<html lang="en">' in plain.text and "Welcome" in plain.text
        browser_ru = httpx.get(
            server.url + "/audit", timeout=60, headers={**auth, "Accept-Language": "ru"}
        )
        assert '<html lang="ru">' in browser_ru.text  # the browser's choice comes first
    finally:
        server.stop()
        english.close()
