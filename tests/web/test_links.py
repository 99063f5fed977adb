"""Links carry ids that need escaping: a group id from a schedule file may hold "/", "?",
"#" or a space, and its lesson page must still open from the center page."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import httpx

from portal.app import create_app
from portal.reconcile.store import apply_import
from portal.registry import add_center, create_admin_token
from portal.settings import Settings
from portal.state import open_portal
from tests.portal.support import LiveServer

T0 = 1_700_000_000_000
GROUP = "Шахматы 1/2 ?#"  # every character a path segment must escape


def test_a_lesson_of_a_group_whose_id_needs_escaping_opens_from_the_center_page(
    tmp_path: Path,
) -> None:
    portal = open_portal(Settings(data_dir=tmp_path / "data", cookie_secure=False))
    add_center(portal.engine, "c1", "Клуб", now=T0)
    files = {
        "schedule": (
            f"group_id,center_id,weekday,start,end,price_kzt\n{GROUP},c1,1,15:00,16:30,3000\n"
        ),
        "roster": f"child_id,badge_uid,center_id,group_id\nK1,04A1B2C3,c1,{GROUP}\n",
        "confirmations": (
            "child_id,group_id,date,confirmed_at,signer\n"
            f"K1,{GROUP},2024-06-03,2024-06-03 20:00,Мама\n"
        ),
    }
    for kind, data in files.items():
        apply_import(portal.engine, kind, data.encode(), f"{kind}.csv", now=T0)
    token = create_admin_token(portal.engine, "aud", "auditor", now=T0)
    server = LiveServer(create_app(portal.settings, portal=portal))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as browser:
            assert browser.post("/login", data={"token": token, "next": "/audit"}).status_code in (
                200,
                303,
            )
            center = browser.get("/audit/centers/c1?from=2024-06-03&to=2024-06-03")
            assert center.status_code == 200, center.text[:300]
            links = re.findall(r'href="(/audit/centers/c1/lessons/[^"]+)"', center.text)
            assert links, "no lesson link on the center page"
            assert "/" not in links[0].split("/lessons/", 1)[1].rsplit("/", 1)[0]  # one segment
            lesson = browser.get(unescape(links[0]))
            assert lesson.status_code == 200, lesson.text[:300]
            assert GROUP in unescape(lesson.text)
    finally:
        server.stop()
        portal.close()


def test_an_error_page_is_headed_in_the_pages_language(tmp_path: Path) -> None:
    portal = open_portal(Settings(data_dir=tmp_path / "data", cookie_secure=False))
    token = create_admin_token(portal.engine, "aud", "auditor", now=T0)
    server = LiveServer(create_app(portal.settings, portal=portal))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as browser:
            browser.post("/login", data={"token": token, "next": "/audit"})
            bad = browser.get("/audit?from=2024-02-30&to=2024-03-01&lang=kk")
            assert bad.status_code == 400
            assert "Бұл сұраныс бойынша бетті көрсету мүмкін емес" in bad.text
            assert "2024-02-30" in bad.text  # the detail still names what was wrong
            missing = browser.get("/audit/centers/nope?lang=ru")
            assert missing.status_code == 404 and "Не найдено" in missing.text
    finally:
        server.stop()
        portal.close()
