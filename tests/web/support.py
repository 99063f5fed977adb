"""A portal holding a small generated city with named centers, served by uvicorn.

The page tests and ``python -m bench.screenshots`` look at the same city.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from portal.app import create_app
from portal.reconcile.store import apply_import
from portal.registry import add_center, create_admin_token
from portal.settings import Settings
from portal.state import Portal, open_portal
from portal.synthetic.feed import IngestUplink
from portal.synthetic.generator import City, CityConfig, district_of, generate
from tests.portal.support import LiveServer

T0 = 1_700_000_000_000
NAMES = {
    "C001": "Шахматный клуб «Алатау»",
    "C002": "Robotics <b>Lab</b> & Co",  # markup in a name stays text
    "C003": "Домбыра үйірмесі",
}


@dataclass
class Site:
    url: str
    city: City
    portal: Portal
    auditor: str
    operator: str
    first: date
    last: date

    @property
    def period(self) -> str:
        return f"from={self.first}&to={self.last}"


@contextmanager
def serve_city(
    data_dir: Path,
    days: int = 14,
    db_url: str | None = None,
    names: Mapping[str, str] = NAMES,
) -> Iterator[Site]:
    """The city on SQLite in ``data_dir``, or in the database ``db_url`` names."""
    extra = {"db_url": db_url} if db_url else {}
    portal = open_portal(Settings(data_dir=data_dir, cookie_secure=False, **extra))
    for center_id, name in names.items():
        add_center(portal.engine, center_id, name, now=T0, district=district_of(center_id))
    config = CityConfig(
        centers=3, days=days, seed=11, injected=0.4, upload_s=600, first=date(2024, 6, 3)
    )
    city, _ = generate(config, IngestUplink(portal.engine, portal.key, now=T0))
    for kind, data in (
        ("schedule", city.schedule_csv()),
        ("roster", city.roster_csv()),
        ("confirmations", city.confirmations_csv()),
    ):
        apply_import(portal.engine, kind, data, f"{kind}.csv", now=T0)
    server = LiveServer(create_app(portal.settings, portal=portal))
    server.start()
    try:
        yield Site(
            server.url,
            city,
            portal,
            create_admin_token(portal.engine, "Аудит города", "auditor", now=T0),
            create_admin_token(portal.engine, "Aigerim", "operator", now=T0),
            config.first,
            city.last,
        )
    finally:
        server.stop()
        portal.close()
