"""The pages' own queries (brackets, heartbeats, clock offsets, spot checks) on PostgreSQL."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import sqlalchemy

from .support import serve_city


def test_every_page_answers_on_postgresql(pg_dsn: str, tmp_path: Path) -> None:
    schema = f"qatysu_web_{secrets.token_hex(4)}"
    admin = sqlalchemy.create_engine(pg_dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in pg_dsn else "?"
    try:
        url = f"{pg_dsn}{sep}options=-csearch_path%3D{schema}"
        with (
            serve_city(tmp_path / "data", days=7, db_url=url) as site,
            httpx.Client(base_url=site.url, timeout=120) as client,
        ):
            assert client.post("/login", data={"token": site.operator}).status_code == 303
            doc = client.get(f"/api/v1/reports/reconciliation?{site.period}").json()
            row = next(r for r in doc["rows"] if r["evidence"]["records"])
            lesson = client.get(
                f"/audit/centers/{row['center_id']}/lessons/{row['group_id']}/{row['date']}"
            )
            assert lesson.status_code == 200 and lesson.text.count('class="read') >= 1
            assert "bracket" in lesson.text and 'class="beat"' in lesson.text
            devices = client.get("/audit/devices?lang=en").text
            assert "\u00a0s … " in devices
            form = {"center": "C001", "date": str(site.last), "present": "5"}
            saved = client.post("/audit/risk/spotchecks", data=form, follow_redirects=False)
            assert saved.status_code == 303
            assert f"{site.last}: 5 / " in client.get(f"/audit/risk?{site.period}").text
            for path in (f"/audit?{site.period}", f"/audit/centers/C001?{site.period}"):
                assert client.get(path).status_code == 200, path
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
