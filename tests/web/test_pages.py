"""The pages as people use them: in a real headless Chromium, and over plain HTTP."""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from portal.reconcile.risk import FEATURES
from portal.web import i18n
from tests.reconcile.cdp import CHROMIUM, Browser
from tests.support.tools import missing

from .support import NAMES, Site


def _browser(lang: str) -> Browser:
    if not CHROMIUM.exists():
        missing(f"Debian's chromium is not installed at {CHROMIUM} (make test installs it as root)")
    return Browser(lang=lang)


def _login(browser: Browser, site: Site, token: str) -> None:
    browser.goto(site.url + "/login")
    browser.js(f"document.querySelector('input[name=token]').value = {token!r}")
    browser.click("#login button[type=submit]")


def _report(site: Site, query: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{site.url}/api/v1/reports/reconciliation?{query}",
        headers={"Authorization": f"Bearer {site.auditor}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text[:300]
    doc: dict[str, Any] = answer.json()
    return doc


@pytest.mark.parametrize(
    ("browser_lang", "lang"), [("ru-RU", "ru"), ("en-US", "en"), ("kk-KZ", "kk")]
)
def test_login_in_the_browsers_language_lands_an_auditor_on_the_overview(
    site: Site, browser_lang: str, lang: str
) -> None:
    t = i18n.translator(lang)
    browser = _browser(browser_lang)
    try:
        browser.goto(site.url + "/")
        assert browser.js("document.documentElement.lang") == lang
        text = browser.js("document.body.innerText")
        assert t["login"] in text and t["token"] in text and t["welcome"] in text
        # A wrong token: the refusal in the same language.
        browser.js("document.querySelector('input[name=token]').value = 'qat_wrong'")
        browser.click("#login button[type=submit]")
        assert browser.js("document.querySelector('#login-error').innerText") == t["unknown_token"]
        _login(browser, site, site.auditor)
        assert browser.js("location.pathname") == "/audit"
        text = browser.js("document.body.innerText")
        assert t["title"] in text and t["logout"] in text and t["role_auditor"] in text
        # Audit and operator pages link to each other.
        browser.click("header nav a[href='/audit/devices']")
        assert t["clock_offset"] in browser.js("document.body.innerText")
        browser.click("header nav a[href='/audit']")
        assert browser.js("location.pathname") == "/audit"
        browser.click("header form.who button")
        assert browser.js("location.pathname") == "/login"
        assert browser.js("document.documentElement.lang") == lang
    finally:
        browser.close()


def test_the_language_switch_on_the_login_page_holds_after_signing_in(site: Site) -> None:
    kk = i18n.translator("kk")
    browser = _browser("en-US")
    try:
        browser.goto(site.url + "/login")
        assert browser.js("document.documentElement.lang") == "en"
        browser.click("a[hreflang=kk]")
        assert browser.js("document.documentElement.lang") == "kk"
        assert kk["token"] in browser.js("document.body.innerText")
        browser.js(f"document.querySelector('input[name=token]').value = {site.operator!r}")
        browser.click("#login button[type=submit]")
        assert browser.js("location.pathname") == "/audit/devices"  # an operator's landing
        text = browser.js("document.body.innerText")
        assert kk["devices"] in text and kk["logout"] in text and kk["role_operator"] in text
        browser.click("header nav a[href='/audit/risk']")
        assert kk["spotcheck_add"] in browser.js("document.body.innerText")
    finally:
        browser.close()


def test_the_overview_ranks_centers_by_kzt_at_risk_and_resorts_and_filters(site: Site) -> None:
    doc = _report(site, site.period)
    expected = sorted(c["kzt_at_risk"] for c in doc["totals"]["centers"])[::-1]
    assert len(set(expected)) > 1, "the city should give centers different figures"
    browser = _browser("en-US")
    try:
        _login(browser, site, site.auditor)
        browser.goto(f"{site.url}/audit?{site.period}")
        shown = browser.js(
            "[...document.querySelectorAll('#centers tr[data-center]')]"
            ".map(r => Number(r.dataset.kztAtRisk))"
        )
        assert shown == expected
        # Names, ids beside them, and the thousands separator of the language.
        first = browser.js("document.querySelector('#centers tr[data-center]').innerText")
        top = max(doc["totals"]["centers"], key=lambda c: c["kzt_at_risk"])
        assert NAMES[top["center_id"]] in first and top["center_id"] in first
        assert f"{top['kzt_at_risk']:,}" in first
        # A click on the header sorts the other way, in the URL: no script needed.
        browser.click("#centers th a[href*='sort=kzt_at_risk']")
        assert "order=asc" in browser.js("location.search")
        again = browser.js(
            "[...document.querySelectorAll('#centers tr[data-center]')]"
            ".map(r => Number(r.dataset.kztAtRisk))"
        )
        assert again == expected[::-1]
        browser.goto(f"{site.url}/audit?{site.period}&show=clean")
        clean = browser.js("document.querySelectorAll('#centers tr[data-center]').length")
        assert clean == sum(
            1 for c in doc["totals"]["centers"] if c["kzt_at_risk"] == c["kzt_unverifiable"] == 0
        )
        # The page fits a phone: it does not scroll sideways, the table does.
        browser.screenshot(site.portal.settings.data_dir / "phone.png", 390, 844, mobile=True)
        assert browser.js("document.documentElement.scrollWidth") <= 391
    finally:
        browser.close()


def _suspect_lesson(site: Site) -> tuple[str, str, str, list[dict[str, Any]]]:
    """A lesson with a suspect row and several reads, and all its rows from the API."""
    doc = _report(site, site.period)
    by_lesson: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in doc["rows"]:
        by_lesson.setdefault((r["center_id"], r["group_id"], r["date"]), []).append(r)
    for key, rows in sorted(by_lesson.items()):
        reads = sum(len(r["evidence"]["records"]) for r in rows)
        if any(r["status"] == "suspect" for r in rows) and reads >= 3:
            return (*key, rows)
    raise AssertionError("the generated city has no suspect lesson with reads")


def test_a_lesson_timeline_draws_every_read_by_child(site: Site) -> None:
    center, group, day, rows = _suspect_lesson(site)
    browser = _browser("en-US")
    try:
        _login(browser, site, site.auditor)
        browser.goto(f"{site.url}/audit/centers/{center}/lessons/{group}/{day}")
        svg = "document.querySelector('svg#timeline')"
        assert browser.js(f"{svg} !== null")
        # One row per child, each read a circle in its child's row, at its seq.
        labels = browser.js(
            f"[...{svg}.querySelectorAll('text.child')].map(e => e.dataset.child).sort()"
        )
        assert labels == sorted(r["child_id"] for r in rows)
        circles = browser.js(
            f"[...{svg}.querySelectorAll('circle.read')]"
            ".map(e => e.dataset.child + '/' + e.dataset.device + '/' + e.dataset.seq).sort()"
        )
        expected = sorted(
            f"{r['child_id']}/{e['device_id']}/{e['seq']}"
            for r in rows
            for e in r["evidence"]["records"]
        )
        assert circles == expected
        proven = sum(1 for r in rows for e in r["evidence"]["records"] if e["time_proven"])
        assert browser.js(f"{svg}.querySelectorAll('circle.read.proven').length") == proven
        # Each reason of a read is marked at it; the lesson window and heartbeats drawn.
        marked = browser.js(
            f"[...{svg}.querySelectorAll('path.reason')].map(e => e.dataset.reasons)"
        )
        with_reasons = [e for r in rows for e in r["evidence"]["records"] if e["reasons"]]
        assert sorted(marked) == sorted(" ".join(e["reasons"]) for e in with_reasons)
        assert browser.js(f"{svg}.querySelectorAll('rect.lesson').length") == 1
        heartbeats = rows[0]["evidence"]["heartbeats"]["heartbeats"]
        assert browser.js(f"{svg}.querySelectorAll('line.beat').length") >= min(1, heartbeats)
        assert "<script" not in browser.js("document.documentElement.outerHTML")
    finally:
        browser.close()


def _download(browser: Browser, folder: Path, selector: str) -> tuple[str, bytes]:
    """Click a download link as a user would; the file Chromium saved, and its name."""
    browser.js(f"document.querySelector({json.dumps(selector)}).click()")
    name = browser.wait_event("Browser.downloadWillBegin")["params"]["suggestedFilename"]
    while True:
        state = browser.wait_event("Browser.downloadProgress")["params"]["state"]
        assert state != "canceled", selector
        if state == "completed":
            break
    return name, (folder / name).read_bytes()


def test_download_links_save_the_reports_with_the_pages_session(site: Site) -> None:
    from openpyxl import load_workbook

    browser = _browser("ru-RU")
    folder = site.portal.settings.data_dir / "downloads"
    browser.call(
        "Browser.setDownloadBehavior",
        {"behavior": "allow", "downloadPath": str(folder), "eventsEnabled": True},
    )
    try:
        _login(browser, site, site.auditor)
        browser.goto(f"{site.url}/audit/centers/C001?{site.period}")
        name, body = _download(browser, folder, "a.download[data-format=xlsx]")
        assert name == f"reconciliation-C001-{site.first}-{site.last}.xlsx"
        book = load_workbook(io.BytesIO(body))
        assert book.sheetnames[0] == i18n.translator("ru")["all_rows"]
        name, body = _download(browser, folder, "a.download[data-format=csv]")
        assert name.endswith(".csv") and body.startswith("\ufeff".encode())
        name, body = _download(browser, folder, "a.download[data-format=html]")
        assert b'<html lang="ru">' in body
        browser.goto(f"{site.url}/audit/risk?{site.period}")
        name, body = _download(browser, folder, "a.download[data-format=csv]")
        assert name == f"risk-{site.first}-{site.last}.csv"
        # The JSON link is not a download: it opens in the tab.
        browser.click("a.download[data-format=json]")
        assert json.loads(browser.js("document.body.innerText"))["from"] == str(site.first)
    finally:
        browser.close()


@contextlib.contextmanager
def _as(site: Site, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, timeout=60) as client:
        assert client.post("/login", data={"token": token}).status_code == 303
        yield client


def test_names_are_text_and_pages_carry_no_script(site: Site) -> None:
    with _as(site, site.auditor) as client:
        for path in (f"/audit?{site.period}", "/audit/centers/C002", "/audit/devices"):
            page = client.get(path + ("&" if "?" in path else "?") + "lang=en")
            assert page.status_code == 200, path
            assert "<script" not in page.text.lower() and 'name="viewport"' in page.text
            assert "Robotics &lt;b&gt;Lab&lt;/b&gt; &amp; Co" in page.text
            assert "<b>Lab</b>" not in page.text


def test_paging_and_the_language_setting(site: Site) -> None:
    with _as(site, site.auditor) as client:
        one = client.get(f"/audit?{site.period}&per=1&page=2&lang=en").text
        assert one.count("<tr data-center=") == 1 and "Page 2 of 3" in one
        assert 'rel="prev"' in one and 'rel="next"' in one
        kk = client.get(f"/audit?{site.period}&lang=kk").text
        assert '<html lang="kk">' in kk and i18n.translator("kk")["title"] in kk
        # Numbers as Russian writes them: no-break spaces between thousands.
        ru = client.get(f"/audit?{site.period}&lang=ru").text
        assert "\u00a0000<" in ru


def test_a_spot_check_from_the_risk_page(site: Site) -> None:
    form = {"center": "C001", "date": str(site.last), "present": "7", "note": "утро"}
    with _as(site, site.auditor) as auditor:
        page = auditor.get("/audit/risk?lang=en").text
        assert 'id="spotcheck"' not in page and "recorded by an operator" in page
        assert auditor.post("/audit/risk/spotchecks", data=form).status_code == 403
    with _as(site, site.operator) as operator:
        bad = operator.post("/audit/risk/spotchecks", data={**form, "present": "many"})
        assert bad.status_code == 400 and "present" in bad.text
        saved = operator.post(
            f"/audit/risk/spotchecks?{site.period}", data=form, follow_redirects=False
        )
        assert saved.status_code == 303 and "saved=1" in saved.headers["location"]
        page = operator.get(saved.headers["location"] + "&lang=en").text
        assert "Spot check recorded." in page
        assert f"{site.last}: 7 / " in page and "(Aigerim)" in page
        # The queue's figures in words of the language, not feature ids.
        words = [i18n.translator("en")[f"feature_{f}"] for f in FEATURES]
        assert any(w in page for w in words) and " vs city " not in page


def test_devices_page_in_local_time_with_state_offset_and_backlog(site: Site) -> None:
    with _as(site, site.operator) as client:
        page = client.get("/audit/devices?lang=en").text
    assert "Times in Asia/Almaty" in page
    for d in site.city.devices:
        assert f'data-device="{d.device_id}"' in page
    assert "silent since" in page  # the generated city's devices spoke long ago
    assert "\u00a0s … " in page  # a clock offset range from the receipts
    events = page.split('id="events"', 1)[1]
    assert '<td title="gap">declared hole</td>' in events


def test_no_page_loads_code_from_elsewhere_and_the_api_document_stays(site: Site) -> None:
    """Decision 0963: no Swagger UI from a CDN; /openapi.json is data and is served."""
    assert httpx.get(site.url + "/docs", timeout=60).status_code == 404
    assert httpx.get(site.url + "/redoc", timeout=60).status_code == 404
    spec = httpx.get(site.url + "/openapi.json", timeout=60)
    assert spec.status_code == 200 and "/api/v1/reports/reconciliation" in spec.json()["paths"]


def test_the_overview_filters_by_district(site: Site) -> None:
    from portal.synthetic.generator import district_of

    with httpx.Client(base_url=site.url, timeout=60) as http:
        http.post("/login", data={"token": site.auditor, "next": "/audit"})
        everyone = http.get(f"/audit?{site.period}&lang=ru").text
        listed = set(re.findall(r'data-center="([^"]+)"', everyone))
        assert len({district_of(c) for c in listed}) > 1, "the city should span districts"
        assert "Все районы" in everyone
        one = district_of(sorted(listed)[0])
        page = http.get(f"/audit?{site.period}&lang=ru&district={one}").text
        shown = set(re.findall(r'data-center="([^"]+)"', page))
        assert shown == {c for c in listed if district_of(c) == one}
        assert f'<option value="{one}" selected>' in page
