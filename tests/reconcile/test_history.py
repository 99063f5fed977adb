"""Import history (docs/reconciliation.md, "Import history"): every version kept, lessons
judged by the schedule of their date, approvals, badge moves, the migration of stored rows,
the CLI and the API flag. On SQLite and, with a DSN, PostgreSQL."""

from __future__ import annotations

import json
from datetime import date, time, timedelta
from pathlib import Path

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from portal.app import create_app
from portal.cli import main
from portal.db import create_engine_for, upgrade_to_head
from portal.db.migrate import alembic_config
from portal.exceptions import ImportFileError, NotFoundError, PortalError
from portal.reconcile.lessons import load_zone, local_ms
from portal.reconcile.model import ReconcileSettings
from portal.reconcile.schema import (
    badge_versions,
    confirmation_versions,
    roster_versions,
    schedule,
    schedule_versions,
)
from portal.reconcile.store import (
    apply_import,
    approve_backlog,
    approve_schedule,
    history,
    load_members,
    load_schedule,
    run_reconciliation,
)
from portal.registry import add_center, create_admin_token
from portal.settings import Settings
from portal.state import Portal, open_portal

ZONE = load_zone("Asia/Almaty")
DAY = date(2024, 6, 3)  # a Monday
BEFORE = local_ms(DAY - timedelta(days=7), time(12), ZONE)
AFTER = local_ms(DAY + timedelta(days=2), time(12), ZONE)
SCHEDULE = "group_id,center_id,weekday,start,end,price_kzt\n"
ROSTER = "child_id,badge_uid,center_id,group_id\n"
CONFIRMATIONS = "child_id,group_id,date,confirmed_at,signer\n"
UID = "04A1B2C3"


def _import(store: Portal, kind: str, body: str, now: int, head: str | None = None) -> None:
    head = head or {"schedule": SCHEDULE, "roster": ROSTER, "confirmations": CONFIRMATIONS}[kind]
    apply_import(store.engine, kind, (head + body).encode(), f"{kind}.csv", now=now)


def _rows(store: Portal) -> dict[str, tuple[str, tuple[str, ...], int]]:
    settings = ReconcileSettings()
    result = run_reconciliation(store.engine, DAY, DAY, settings, ZONE)
    return {r.child_id: (r.status, r.reasons, r.price_kzt) for r in result.rows}


def _count(store: Portal, table: object) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def _city(store: Portal) -> None:
    add_center(store.engine, "C1", "Один", now=BEFORE)
    _import(store, "schedule", "G1,C1,1,15:00,16:30,3000\n", BEFORE)  # the baseline
    _import(store, "roster", f"K1,{UID},C1,G1\n", BEFORE)
    _import(store, "confirmations", f"K1,G1,{DAY},{DAY} 21:00,Мама\n", AFTER)


def test_a_changed_row_keeps_its_versions_and_a_reimport_changes_nothing(store: Portal) -> None:
    _city(store)
    _import(store, "schedule", "G1,C1,1,15:00,16:30,9000\n", AFTER)
    _import(store, "schedule", "G1,C1,1,15:00,16:30,9000\n", AFTER + 1)  # the same file again
    versions = history(store.engine, "schedule", "G1")
    assert [(v["price_kzt"], v["imported_ms"], v["baseline"]) for v in versions] == [
        (3000, BEFORE, True),
        (9000, AFTER, False),
    ]
    assert versions[1]["file"] == "schedule.csv"
    with store.engine.connect() as conn:
        assert conn.execute(select(schedule.c.price_kzt)).scalar_one() == 9000
    # The price raised after the lesson: the old price, flagged, until approved.
    assert _rows(store)["K1"] == ("suspect", ("schedule_changed_late",), 3000)
    approve_schedule(store.engine, "G1", DAY, DAY, by="Operator", note="agreed", now=AFTER + 5)
    assert _rows(store)["K1"] == ("confirmed_device_offline", (), 9000)
    [approval] = history(store.engine, "approvals", "G1")
    assert (approval["by"], approval["note"], approval["approved_ms"]) == (
        "Operator",
        "agreed",
        AFTER + 5,
    )


def test_a_group_added_after_its_lesson_is_late_a_make_up_added_before_is_not(
    store: Portal,
) -> None:
    _city(store)
    body = "G1,C1,1,15:00,16:30,3000\nG2,C1,1,10:00,11:00,2000\n"
    _import(store, "schedule", body, AFTER)  # G2 is new, after its first lesson
    head = SCHEDULE.strip() + ",valid_from,valid_to\n"
    _import(store, "schedule", f"G3,C1,1,18:00,19:00,2000,{DAY},{DAY}\n", BEFORE, head)
    _import(store, "roster", "K2,04A1B2C4,C1,G2\nK3,04A1B2C5,C1,G3\n", AFTER)
    confs = f"K2,G2,{DAY},{DAY} 21:00,Папа\nK3,G3,{DAY},{DAY} 21:00,Апа\n"
    _import(store, "confirmations", confs, AFTER)
    rows = _rows(store)
    assert rows["K1"][1] == ()  # the baseline applies from the beginning
    assert rows["K2"][:2] == ("suspect", ("schedule_changed_late",))
    assert rows["K3"][1] == ()  # a make-up lesson imported before its date


def test_a_city_importing_center_by_center_approves_its_backlog_in_one_step(
    store: Portal,
) -> None:
    _city(store)  # C1's file is the city's first: its baseline
    add_center(store.engine, "C2", "Екі", now=BEFORE)
    _import(store, "schedule", "G5,C2,1,15:00,16:30,3000\nG6,C2,1,17:00,18:00,3000\n", AFTER)
    _import(store, "roster", "K5,04A1B2D5,C2,G5\nK6,04A1B2D6,C2,G6\n", AFTER)
    confs = f"K5,G5,{DAY},{DAY} 21:00,a\nK6,G6,{DAY},{DAY} 21:00,b\n"
    _import(store, "confirmations", confs, AFTER)
    rows = _rows(store)
    assert rows["K5"][1] == rows["K6"][1] == ("schedule_changed_late",)
    with pytest.raises(NotFoundError, match="C9"):
        approve_backlog(store.engine, DAY, DAY, by="Op", note="", now=AFTER, center="C9")
    done = approve_backlog(
        store.engine, DAY - timedelta(days=30), DAY, by="Op", note="go-live", now=AFTER + 1,
        center="C2",
    )  # fmt: skip
    assert sorted(a.group_id for a in done) == ["G5", "G6"]
    rows = _rows(store)
    assert rows["K5"][1] == rows["K6"][1] == rows["K1"][1] == ()


def test_a_bad_file_stores_no_version(store: Portal) -> None:
    _city(store)
    before = _count(store, schedule_versions)
    with pytest.raises(ImportFileError, match=r"^s\.csv:3:3: weekday"):
        apply_import(
            store.engine,
            "schedule",
            (SCHEDULE + "G1,C1,1,15:00,16:30,4000\nG2,C1,9,15:00,16:00,1\n").encode(),
            "s.csv",
            now=AFTER,
        )
    assert _count(store, schedule_versions) == before
    assert [v["price_kzt"] for v in history(store.engine, "schedule", "G1")] == [3000]


def test_a_moved_badge_and_a_later_membership_hold_from_their_import(store: Portal) -> None:
    _city(store)
    _import(store, "schedule", "G2,C1,3,15:00,16:30,3000\n", BEFORE)
    _import(store, "roster", f"K2,{UID},C1,G1\nK1,04A1B2C9,C1,G2\n", AFTER)
    with store.engine.connect() as conn:
        members = {
            (m.child_id, m.group_id, m.badges): (m.from_ms, m.to_ms) for m in load_members(conn)
        }
    assert members[("K1", "G1", frozenset({UID}))] == (None, AFTER)  # first owner: from the start
    assert members[("K2", "G1", frozenset({UID}))] == (AFTER, None)  # moved: from the import
    # K1's new badge is K1's from the start, but K1 joined G2 only at this import.
    assert members[("K1", "G2", frozenset({"04A1B2C9"}))] == (AFTER, None)
    assert [v["child_id"] for v in history(store.engine, "badge", "04:a1:b2:c3")] == ["K1", "K2"]
    assert _count(store, badge_versions) == 3 and _count(store, roster_versions) == 3
    # The lesson on DAY predates the move: the read would still be K1's.
    assert _rows(store)["K1"][1] == ()


def test_approvals_are_checked(store: Portal) -> None:
    _city(store)
    with pytest.raises(NotFoundError, match="G9"):
        approve_schedule(store.engine, "G9", DAY, DAY, by="Op", note="", now=AFTER)
    with pytest.raises(PortalError, match="--by"):
        approve_schedule(store.engine, "G1", DAY, DAY, by=" ", note="", now=AFTER)
    with pytest.raises(PortalError, match="before"):
        approve_schedule(store.engine, "G1", DAY, DAY - timedelta(days=1), by="Op", note="", now=1)


def test_confirmations_keep_their_instant_and_their_versions(store: Portal) -> None:
    _city(store)
    _import(store, "confirmations", f"K1,G1,{DAY},{DAY}T16:00:00+05:00,Мама\n", AFTER + 1)
    assert [v["confirmed_at"] for v in history(store.engine, "confirmations", "K1")] == [
        f"{DAY}T21:00:00",
        f"{DAY}T16:00:00+05:00",
    ]
    assert _rows(store)["K1"][:2] == ("suspect", ("confirmed_early",))
    assert _count(store, confirmation_versions) == 2


def test_the_migration_keeps_what_was_stored(store_settings: Settings) -> None:
    store_settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine_for(store_settings)
    try:
        command.upgrade(alembic_config(engine), "0004_rate_buckets")
        add_center(engine, "C1", "Один", now=BEFORE)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO schedule (group_id, center_id, weekday, valid_from, valid_to, "
                    'start, "end", price_kzt, imported_ms) VALUES '
                    "('G1', 'C1', 1, '', '', '15:00', '16:30', 3000, :late)"
                ),
                {"late": AFTER},  # changed in place after the lesson, before the history
            )
            conn.execute(
                text(
                    "INSERT INTO roster (child_id, group_id, center_id, child_name, imported_ms) "
                    "VALUES ('K1', 'G1', 'C1', '', :t), ('K1', 'G2', 'C1', 'renamed', :late)"
                ),
                {"t": BEFORE, "late": AFTER},
            )
            conn.execute(
                text("INSERT INTO badges (uid, child_id, imported_ms) VALUES (:u, 'K1', :t)"),
                {"u": UID, "t": BEFORE},
            )
            conn.execute(
                text(
                    "INSERT INTO confirmations (child_id, group_id, date, confirmed_at, signer, "
                    "imported_ms) VALUES ('K1', 'G1', :d, :at, 'Мама', :t)"
                ),
                {"d": DAY.isoformat(), "at": f"{DAY}T21:00:00", "t": AFTER},
            )
        upgrade_to_head(engine)
        with engine.connect() as conn:
            [entry] = load_schedule(conn)
            assert (entry.price_kzt, entry.imported_ms, entry.replaced_ms) == (3000, None, None)
            members = {(m.group_id, m.from_ms) for m in load_members(conn)}
            assert members == {("G1", None), ("G2", None)}
        result = run_reconciliation(engine, DAY, DAY, ReconcileSettings(), ZONE)
        [row] = result.rows
        assert (row.status, row.reasons, row.price_kzt) == ("confirmed_device_offline", (), 3000)
        assert [v["imported_ms"] for v in history(engine, "confirmations", "K1")] == [AFTER]
    finally:
        engine.dispose()


# --- the command line and the API (SQLite) -------------------------------------------------


def test_cli_long_lessons_history_and_approval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    base = ["--data-dir", str(data)]
    assert main([*base, "center", "add", "C1", "--name", "Один"]) == 0
    files = {
        "s1.csv": SCHEDULE + "G1,C1,1,15:00,16:30,3000\n",
        "long.csv": SCHEDULE + "G1,C1,1,15:00,16:30,3000\nG2,C1,2,08:00,20:00,3000\n",
        "s2.csv": SCHEDULE + "G1,C1,1,15:00,16:30,9000\n",
        "r.csv": ROSTER + f"K1,{UID},C1,G1\n",
        "c.csv": CONFIRMATIONS + f"K1,G1,{DAY},{DAY} 21:00,Мама\n",
    }
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    path = {name: str(tmp_path / name) for name in files}
    assert main([*base, "import", "schedule", path["s1.csv"]]) == 0
    capsys.readouterr()
    assert main([*base, "import", "schedule", path["long.csv"]]) == 2
    assert capsys.readouterr().err.strip() == (
        f"qatysu-portal: error: {path['long.csv']}:3:5: end: a lesson of 720 min (08:00-20:00) "
        "is longer than lesson_max_min (180); import with --allow-long if it is real"
    )
    assert main([*base, "import", "roster", path["r.csv"], "--allow-long"]) == 2
    assert main([*base, "import", "schedule", path["long.csv"], "--allow-long"]) == 0
    for kind, name in (("schedule", "s2.csv"), ("roster", "r.csv"), ("confirmations", "c.csv")):
        assert main([*base, "import", kind, path[name]]) == 0
    capsys.readouterr()
    assert main([*base, "history", "schedule", "G1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "price_kzt=3000" in lines[0] and "price_kzt=9000" in lines[1]
    assert f"file={path['s2.csv']}" in lines[1]
    assert main([*base, "history", "schedule", "G9"]) == 1

    period = ["reconcile", "--from", str(DAY), "--to", str(DAY), "--format", "json"]
    capsys.readouterr()
    assert main([*base, *period]) == 0
    [row] = json.loads(capsys.readouterr().out)["rows"]
    assert row["reasons"] == ["schedule_changed_late"] and row["price_kzt"] == 3000

    assert main([*base, "schedule", "approve", "G1", str(DAY)]) == 2  # --by is required
    capsys.readouterr()
    approve = ["schedule", "approve", "G1", str(DAY), "--by", "Operator", "--note", "agreed"]
    assert main([*base, *approve]) == 0
    assert "approved the schedule of G1 for 2024-06-03 .. 2024-06-03 by Operator" in (
        capsys.readouterr().out
    )
    assert main([*base, *period]) == 0
    [row] = json.loads(capsys.readouterr().out)["rows"]
    assert row["reasons"] == [] and row["price_kzt"] == 9000
    assert main([*base, "history", "approvals", "G1", "--json"]) == 0
    [logged] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert (logged["by"], logged["note"], logged["first"]) == ("Operator", "agreed", str(DAY))
    # An unknown group is invalid input: exit 2.
    assert main([*base, "schedule", "approve", "G9", str(DAY), "--by", "Operator"]) == 2
    capsys.readouterr()
    assert main([*base, "schedule", "approve-all", str(DAY), "--center", "C1", "--by", "Op"]) == 0
    assert "approved the schedules of 2 groups for 2024-06-03 .. 2024-06-03 by Op" in (
        capsys.readouterr().out
    )


def test_api_import_refuses_a_long_lesson_unless_allowed(tmp_path: Path) -> None:
    portal = open_portal(Settings(data_dir=tmp_path / "data", cookie_secure=False))
    try:
        add_center(portal.engine, "C1", "Один", now=BEFORE)
        token = create_admin_token(portal.engine, "op", "operator", now=portal.clock())
        body = (SCHEDULE + "G2,C1,2,08:00,20:00,3000\n").encode()
        auth = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(portal.settings, portal=portal)) as http:
            refused = http.post(
                "/api/v1/admin/imports/schedule?name=s.csv", content=body, headers=auth
            )
            assert refused.status_code == 422
            assert refused.json()["detail"].startswith("s.csv:2:5: end: a lesson of 720 min")
            url = "/api/v1/admin/imports/schedule?name=s.csv&allow_long=true"
            admitted = http.post(url, content=body, headers=auth)
            assert admitted.status_code == 200 and admitted.json()["added"] == 1
    finally:
        portal.close()


def test_api_history_and_approval(tmp_path: Path) -> None:
    portal = open_portal(Settings(data_dir=tmp_path / "data", cookie_secure=False))
    try:
        _city(portal)
        _import(portal, "schedule", "G1,C1,1,15:00,16:30,9000\n", AFTER)
        auditor = create_admin_token(portal.engine, "aud", "auditor", now=portal.clock())
        operator = create_admin_token(portal.engine, "op", "operator", now=portal.clock())
        aud = {"Authorization": f"Bearer {auditor}"}
        op = {"Authorization": f"Bearer {operator}"}
        with TestClient(create_app(portal.settings, portal=portal)) as http:
            doc = http.get("/api/v1/admin/history/schedule/G1", headers=aud).json()
            assert [v["price_kzt"] for v in doc["versions"]] == [3000, 9000]
            assert http.get("/api/v1/admin/history/schedule/G9", headers=aud).status_code == 404
            assert http.get("/api/v1/admin/history/badge/zz", headers=aud).status_code == 400
            assert http.get("/api/v1/admin/history/nothing/G1", headers=aud).status_code == 404
            body = {"group_id": "G1", "first": str(DAY), "by": "Operator", "note": "ok"}
            url = "/api/v1/admin/schedule/approvals"
            assert http.post(url, json=body, headers=aud).status_code == 403  # auditors read
            made = http.post(url, json=body, headers=op)
            assert made.status_code == 201 and made.json()["last"] == str(DAY)
            unknown = http.post(url, json={**body, "group_id": "G9"}, headers=op)
            assert unknown.status_code == 404
            reversed_ = {**body, "last": str(DAY - timedelta(days=1))}
            assert http.post(url, json=reversed_, headers=op).status_code == 400
            [logged] = http.get("/api/v1/admin/history/approvals/G1", headers=aud).json()[
                "versions"
            ]
            assert (logged["by"], logged["note"]) == ("Operator", "ok")
        assert _rows(portal)["K1"] == ("confirmed_device_offline", (), 9000)
    finally:
        portal.close()
