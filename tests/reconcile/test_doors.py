"""Door facts from the latest boot record however old, door resets, door_held_open."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from portal.db.schema import devices, records
from portal.reconcile.model import ReconcileSettings
from portal.reconcile.store import latest_boot_before
from portal.registry import add_center
from portal.state import Portal

from .support import END, MIN, START, Log, S, confirm, run, sorted_log, status

UID = "04A1B2C3"
BOOT = {"doors": ["front"], "readers": ["main"], "drivers": ["mfrc522"]}


def _quiet(log: Log) -> Log:
    log.heartbeats(START - 2 * 3600 * S, END + 3600 * S)
    return log


def test_the_boot_before_the_range_still_declares_the_door() -> None:
    # Booted once at install, months before: no boot record in the loaded range.
    log = _quiet(Log())
    log.badge(START, UID)  # the door stays shut
    log.log = sorted_log(log.log)
    assert status(run([log.log], [confirm()])) == ("verified", ())  # nothing known: no rule
    log.log.boot_before = BOOT
    assert status(run([log.log], [confirm()])) == ("suspect", ("no_door_passage",))


def test_with_the_old_boot_a_tap_behind_an_opening_is_verified() -> None:
    log = _quiet(Log())
    log.door(START - 2 * S, "open")
    log.badge(START, UID)
    log.door(START + 9 * S, "closed")
    log.log = sorted_log(log.log)
    log.log.boot_before = BOOT
    assert status(run([log.log], [confirm()])) == ("verified", ())


def test_a_boot_before_the_range_listing_no_door_is_no_door_sensor() -> None:
    log = _quiet(Log())
    log.badge(START, UID)
    log.log = sorted_log(log.log)
    log.log.boot_before = {"doors": [], "readers": ["main"], "drivers": ["mfrc522"]}
    assert status(run([log.log], [confirm()])) == ("suspect", ("no_door_sensor",))


def test_a_later_boot_in_range_replaces_the_old_one() -> None:
    log = _quiet(Log())
    log.boot_record(START - 3600 * S, doors=())  # rebooted with the door taken out
    log.badge(START, UID)
    log.log = sorted_log(log.log)
    log.log.boot_before = BOOT
    assert status(run([log.log], [confirm()])) == ("suspect", ("no_door_sensor",))


def _held(opened_before: int, read_at: int = START) -> tuple[str, tuple[str, ...]]:
    log = _quiet(Log())
    log.boot_record(START - 6 * 3600 * S)
    log.door(read_at - opened_before, "open")  # never closed
    log.badge(read_at, UID)
    log.log = sorted_log(log.log)
    return status(run([log.log], [confirm()]))


def test_a_door_propped_for_arrivals_is_open() -> None:
    # Warm days: propped from up to 40 min before the start; the last arrivals at
    # start + 10 min, the door closing up to 30 min after the start.
    assert _held(40 * MIN) == ("verified", ())
    assert _held(70 * MIN) == ("verified", ())


def test_an_open_older_than_door_open_max_is_door_held_open() -> None:
    assert _held(90 * MIN + 60 * S + 1) == ("suspect", ("door_held_open",))
    assert _held(5 * 3600 * S) == ("suspect", ("door_held_open",))


def test_a_fresh_opening_clears_door_held_open() -> None:
    log = _quiet(Log())
    log.boot_record(START - 6 * 3600 * S)
    log.door(START - 4 * 3600 * S, "open")  # stuck open since
    log.door(START - 2 * S, "open")  # a child opens it (as a second sensor would say)
    log.badge(START, UID)
    log.log = sorted_log(log.log)
    assert status(run([log.log], [confirm()])) == ("verified", ())


def test_door_open_max_is_a_setting() -> None:
    log = _quiet(Log())
    log.boot_record(START - 6 * 3600 * S)
    log.door(START - 20 * MIN, "open")
    log.badge(START, UID)
    log.log = sorted_log(log.log)
    tight = ReconcileSettings(door_open_max_ms=10 * MIN)
    assert status(run([log.log], [confirm()], settings=tight)) == (
        "suspect",
        ("door_held_open",),
    )


def test_a_boot_resets_the_door() -> None:
    # Opened, then the device rebooted: nothing says the door is still open.
    log = Log()
    log.boot_record(START - 6 * 3600 * S)
    log.heartbeats(START - 2 * 3600 * S, START - 11 * MIN)
    log.door(START - 20 * MIN, "open")
    log.boot_record(START - 10 * MIN, boot="b2")
    log.boot = "b2"  # every later record is of the new boot (else: a clone sign)
    log.heartbeats(START - 5 * MIN, END + 3600 * S)
    log.badge(START, UID)
    log.log = sorted_log(log.log)
    assert status(run([log.log], [confirm()])) == ("suspect", ("no_door_passage",))


def test_the_store_finds_the_latest_boot_before_a_seq(store: Portal) -> None:
    add_center(store.engine, "C1", "Один", now=1)
    rows: list[dict[str, Any]] = []
    kinds = ["boot", "heartbeat", "boot", "badge", "heartbeat", "heartbeat", "boot", "door"]
    for seq, kind in enumerate(kinds, 1):
        data: dict[str, Any] = {"doors": [f"door{seq}"]} if kind == "boot" else {}
        rows.append(
            {
                "device_id": "D1",
                "seq": seq,
                "hash": f"{seq:064x}",
                "prev": f"{seq - 1:064x}",
                "type": kind,
                "wall_ms": seq,
                "synced": True,
                "boot": "b",
                "mono_ns": seq,
                "anchor": "",
                "data": data,
                "body": {},
                "received_ms": seq,
                "covered_ms": None,
                "sig_checked": True,
            }
        )
    with store.engine.begin() as conn:
        conn.execute(
            insert(devices),
            [
                {
                    "device_id": "D1",
                    "center_id": "C1",
                    "public_key": "k" * 44,
                    "agent_version": "0.1.0",
                    "hardware": {},
                    "enrolled_ms": 1,
                    "head_seq": 8,
                    "head_hash": "0" * 64,
                }
            ],
        )
        conn.execute(insert(records), rows)
    with store.engine.connect() as conn:
        assert latest_boot_before(conn, "D1", 1) is None
        assert latest_boot_before(conn, "D1", 2) == {"doors": ["door1"]}
        assert latest_boot_before(conn, "D1", 7) == {"doors": ["door3"]}
        assert latest_boot_before(conn, "D1", 100) == {"doors": ["door7"]}
        assert latest_boot_before(conn, "D2", 100) is None
