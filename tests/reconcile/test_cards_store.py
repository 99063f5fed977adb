"""Card reads through the real ingest and store, on SQLite and PostgreSQL: counters
accepted in one period bar a replay in the next; a rerun keeps nothing twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from portal.cards.registry import card_book, import_cards, set_require_card_auth
from portal.db.schema import card_counters
from portal.keys import load_or_create_card_master
from portal.reconcile.model import ReconcileSettings
from portal.reconcile.store import DAY_MS, apply_import, run_reconciliation
from portal.state import Portal
from tests.cards.sun import sun_field
from tests.reconcile.support import DAY, MIN, START, ZONE, S
from tests.reconcile.test_proven_time import TAP, Signed

UID = "04C767F2066180"
META = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
FILE = bytes.fromhex("FFEEDDCCBBAA99887766554433221100")
WEEK = 7 * DAY_MS


class SunDevice(Signed):
    def sun_tap(self, at: int, counter: int | None) -> None:
        self.record(at - 3 * S, "door", {"sensor": "front", "state": "open"})
        badge: dict[str, Any] = {"reader": "main", "driver": "mfrc522", "uid": UID, "uid_len": 7}
        if counter is not None:
            badge["card"] = sun_field(META, FILE, bytes.fromhex(UID), counter)
        self.record(at, "badge", badge)

    def beats(self, lo: int, hi: int) -> None:
        for at in range(lo, hi, 5 * MIN):
            self.record(at, "heartbeat", {"pending": 0})


def _setup(store: Portal) -> SunDevice:
    device = SunDevice(store)
    first = START - 2 * 3600 * S
    device.record(first, "boot", {"doors": ["front"], "readers": ["main"], "drivers": ["mfrc522"]})
    master = load_or_create_card_master(store.settings.data_dir)
    cards = f"badge_uid,kind,meta_key,file_key\n{UID},ntag424-sun,{META.hex()},{FILE.hex()}\n"
    import_cards(store.engine, master, cards.encode(), "cards.csv", now=START - DAY_MS)
    files = {
        "schedule": b"group_id,center_id,weekday,start,end,price_kzt\nG1,C1,1,15:00,16:30,3000\n",
        "roster": f"child_id,badge_uid,center_id,group_id\nK1,{UID},C1,G1\n".encode(),
        "confirmations": b"child_id,group_id,date,confirmed_at,signer\n"
        b"K1,G1,2024-06-03,2024-06-03 20:00,parent\n"
        b"K1,G1,2024-06-10,2024-06-10 20:00,parent\n",
    }
    for kind, data in files.items():
        apply_import(store.engine, kind, data, f"{kind}.csv", now=START - DAY_MS)
    return device


def _row(store: Portal, week: int) -> tuple[str, tuple[str, ...]]:
    day = DAY + timedelta(days=7 * week)
    book = card_book(store.engine, store.settings.data_dir)
    result = run_reconciliation(store.engine, day, day, ReconcileSettings(), ZONE, cards=book)
    (row,) = result.rows
    return row.status, row.reasons


def _kept(store: Portal) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(card_counters)).scalar_one())


def test_a_message_replayed_a_week_later_is_caught(store: Portal) -> None:
    device = _setup(store)
    device.beats(START - 2 * 3600 * S + MIN, TAP)
    device.sun_tap(TAP, 10)
    device.beats(TAP + MIN, START + 2 * 3600 * S)
    assert _row(store, 0) == ("verified", ())
    assert _kept(store) == 1
    assert _row(store, 0) == ("verified", ())  # a rerun: the read is its own bar, not a replay
    assert _kept(store) == 1
    # A week later the club's Pi sends an old message of the card (counter 9, copied
    # before the read above) instead of a tap.
    device.beats(START + WEEK - 2 * 3600 * S, TAP + WEEK)
    device.sun_tap(TAP + WEEK, 9)
    device.beats(TAP + WEEK + MIN, START + WEEK + 2 * 3600 * S)
    assert _row(store, 1) == ("suspect", ("card_replayed",))


def test_a_read_without_the_cards_proof_and_require_card_auth(store: Portal) -> None:
    device = _setup(store)
    device.beats(START - 2 * 3600 * S + MIN, TAP)
    device.sun_tap(TAP, None)  # a UID clone of the card: no card object
    device.beats(TAP + MIN, START + 2 * 3600 * S)
    assert _row(store, 0) == ("suspect", ("card_not_authenticated",))
    set_require_card_auth(store.engine, "C1", True)
    assert _row(store, 0) == ("suspect", ("card_not_authenticated",))
