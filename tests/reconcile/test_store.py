"""Imports and reconciliation against a real database, fed through the real ingest."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
from sqlalchemy import func, select

from portal.exceptions import ImportFileError
from portal.reconcile.lessons import load_zone
from portal.reconcile.model import ReconcileSettings
from portal.reconcile.report import as_json
from portal.reconcile.schema import confirmations, roster, schedule
from portal.reconcile.store import apply_import, run_reconciliation
from portal.registry import add_center
from portal.state import Portal
from portal.synthetic.feed import IngestUplink
from portal.synthetic.generator import FIRST_ATTACKS, CityConfig, generate

T0 = 1_700_000_000_000


def _counts(store: Portal) -> tuple[int, ...]:
    with store.engine.connect() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (roster, schedule, confirmations)
        )


def test_a_generated_city_through_the_real_ingest_matches_its_labels(store: Portal) -> None:
    config = CityConfig(
        centers=2, days=12, seed=5, injected=0.3, first=date(2024, 2, 24), upload_s=3600
    )
    link = IngestUplink(store.engine, store.key, now=T0)
    city, _ = generate(config, link)
    for kind, data in (
        ("schedule", city.schedule_csv()),
        ("roster", city.roster_csv()),
        ("confirmations", city.confirmations_csv()),
    ):
        outcome = apply_import(store.engine, kind, data, f"{kind}.csv", now=T0)
        assert outcome.added > 0
    before = _counts(store)
    for kind, data in (
        ("schedule", city.schedule_csv()),
        ("roster", city.roster_csv()),
        ("confirmations", city.confirmations_csv()),
    ):
        again = apply_import(store.engine, kind, data, f"{kind}.csv", now=T0 + 1)
        assert (again.added, again.changed) == (0, 0)
    assert _counts(store) == before

    settings = ReconcileSettings()
    zone = load_zone(settings.timezone)
    result = run_reconciliation(store.engine, config.first, city.last, settings, zone)
    got = {(r.child_id, r.group_id, r.date): (r.status, r.reasons) for r in result.rows}
    assert Counter(status for status, _ in got.values())["suspect"] > 0
    # The generator's ground truth: the first release's attack classes are all caught.
    first = [k for k, t in city.truth.items() if t.label in FIRST_ATTACKS]
    assert first and all(got[k][0] != "verified" for k in first)
    doc = as_json(result, zone)
    assert doc["from"] == config.first.isoformat() and doc["to"] == city.last.isoformat()
    one = doc["rows"][0]
    assert {
        "child_id",
        "group_id",
        "center_id",
        "date",
        "status",
        "reasons",
        "price_kzt",
        "evidence",
    } <= set(one)
    only = run_reconciliation(store.engine, config.first, city.last, settings, zone, center="C001")
    assert {r.center_id for r in only.rows} == {"C001"}


def test_a_bad_file_applies_nothing(store: Portal) -> None:
    add_center(store.engine, "C1", "Один", now=T0)
    good = b"group_id,center_id,weekday,start,end,price_kzt\nG1,C1,1,15:00,16:30,3000\n"
    apply_import(store.engine, "schedule", good, "s.csv", now=T0)
    bad = (
        b"group_id,center_id,weekday,start,end,price_kzt\n"
        b"G2,C1,2,15:00,16:30,3000\nG3,C1,9,15:00,16:30,3000\n"
    )
    with pytest.raises(ImportFileError, match=r"^s2\.csv:3:3: weekday"):
        apply_import(store.engine, "schedule", bad, "s2.csv", now=T0)
    assert _counts(store) == (0, 1, 0)


def test_a_changed_row_is_updated_in_place(store: Portal) -> None:
    add_center(store.engine, "C1", "Один", now=T0)
    head = b"group_id,center_id,weekday,start,end,price_kzt\n"
    apply_import(store.engine, "schedule", head + b"G1,C1,1,15:00,16:30,3000\n", "s.csv", now=T0)
    outcome = apply_import(
        store.engine, "schedule", head + b"G1,C1,1,15:00,16:30,3500\n", "s.csv", now=T0
    )
    assert (outcome.added, outcome.changed) == (0, 1)
    with store.engine.connect() as conn:
        assert conn.execute(select(schedule.c.price_kzt)).scalar_one() == 3500


def test_the_bracket_setting_comes_from_the_environment() -> None:
    from portal.exceptions import PortalConfigError
    from portal.settings import Settings

    default = ReconcileSettings.from_portal(Settings.from_env(environ={}))
    assert default.time_bracket_ms == 600_000
    off = Settings.from_env(environ={"QATYSU_PORTAL_TIME_BRACKET_S": "0"})
    assert ReconcileSettings.from_portal(off).time_bracket_ms == 0
    with pytest.raises(PortalConfigError, match="time_bracket_s"):
        Settings.from_env(environ={"QATYSU_PORTAL_TIME_BRACKET_S": "-1"})


def test_a_never_synced_device_through_the_real_ingest_is_verified(store: Portal) -> None:
    # Receipts signed by the real ingest prove each record's time (decision 0820).
    config = CityConfig(
        centers=1,
        days=3,
        seed=8,
        injected=0.0,
        first=date(2024, 6, 3),
        unsynced=1.0,
        no_lesson_per_center=0,
    )
    city, _ = generate(config, IngestUplink(store.engine, store.key, now=T0))
    assert all(d.never_synced for d in city.devices)
    for kind, data in (
        ("schedule", city.schedule_csv()),
        ("roster", city.roster_csv()),
        ("confirmations", city.confirmations_csv()),
    ):
        apply_import(store.engine, kind, data, f"{kind}.csv", now=T0)
    zone = load_zone("Asia/Almaty")
    for bracket_ms, want in ((900_000, "verified"), (0, "present_unproven")):
        settings = ReconcileSettings(proof_bracket_ms=bracket_ms)
        result = run_reconciliation(store.engine, config.first, city.last, settings, zone)
        got = {(r.child_id, r.group_id, r.date): (r.status, r.reasons) for r in result.rows}
        statuses = Counter(got[k][0] for k in city.tapped_rows)
        assert statuses.most_common(1)[0][0] == want, statuses


def test_the_language_setting_is_checked() -> None:
    from portal.exceptions import PortalConfigError
    from portal.settings import Settings

    assert Settings.from_env(environ={"QATYSU_PORTAL_LANGUAGE": "kk"}).language == "kk"
    with pytest.raises(PortalConfigError, match="language must be ru, en or kk"):
        Settings.from_env(environ={"QATYSU_PORTAL_LANGUAGE": "de"})
