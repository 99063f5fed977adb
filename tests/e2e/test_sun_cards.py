"""SUN cards end to end, with real parts from the card in the field to the reconciliation.

The whole daemon runs in this process (:class:`agent.daemon.Daemon`: open, start, its
reader thread, event pump, record store and upload loop), configured with an
``mfrc522`` reader that the reader registry builds on its default bus: the real
``mfrc522`` package over the fake spidev and RPi.GPIO of tests/hardware/fakes, wired
to the register-level MFRC522 emulator. In its field: an NTAG 424 DNA emulator
personalised by the station code with keys the portal's card key code issued
(grant, sealed bundle, activation by the first SUN read), a UID-only card with the
same UID (a clone), and a UID-only card of another child. The uploads go through
httpx to the real portal under uvicorn; the reconciliation is the portal's own,
with the card book it builds. The daemon's heartbeats are its own
``write_heartbeat``; what a rooted Pi does is a record written through the daemon's
own store, signed with the device key, as root can.

Time: device and portal share one manual wall clock (the portal's receipts and the
device's records agree, and a 90-minute lesson takes seconds); the reader polls in
real time. Doors are not part of this story: the center is door-optional.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import date, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.clock import ManualClock
from agent.config import load_config
from agent.daemon import Daemon
from agent.protocol.card_keys import open_bundle, station_authorization, x25519_public_b64
from agent.protocol.keys import public_key_b64
from agent.protocol.ntag424 import KIND, parse_sun_ndef
from agent.readers.iso14443 import activate
from agent.readers.isodep import IsoDep, read_ndef_file
from portal.app import create_app
from portal.cards.registry import (
    StationRequest,
    activate_card,
    card_book,
    create_grant,
    enroll_station,
    set_require_card_auth,
    station_keys,
)
from portal.keys import load_or_create_card_master
from portal.reconcile.lessons import local_ms
from portal.reconcile.model import ReconcileSettings
from portal.reconcile.store import apply_import, run_reconciliation
from portal.registry import add_center, create_admin_token
from portal.settings import Settings
from portal.state import Portal, open_portal
from tests.daemon.support import LivePortal, make_device, wait_until
from tests.hardware.fakes import installed
from tests.hardware.fakes.RPi import GPIO
from tests.hardware.mfrc522_emu import EmulatedBoard, EmulatedCard
from tests.hardware.sun_cards import SunCard, personalised_card
from tests.portal.support import LiveServer
from tests.readers.test_isodep import drive
from tests.reconcile.support import ZONE

UID = "04C767F2066180"  # K1's card, an NTAG 424 DNA
OTHER = "5AC3E0F1"  # K2's card, a MIFARE Classic: UID only
DAY0 = date(2024, 6, 3)  # a Monday
WEEKS = 5
MIN_MS = 60_000
URL = "https://qatysu.kz/c"
SETTINGS = ReconcileSettings(door_optional_centers=frozenset({"c1"}))


class ClockedPortal(LivePortal):
    """LivePortal on the test's manual clock (its receipts carry the same time)."""

    def __init__(self, data_dir: Path, clock: ManualClock) -> None:
        self.settings = Settings(data_dir=data_dir, rate_burst=100_000, rate_per_s=100_000.0)
        self.portal: Portal = open_portal(self.settings, clock=lambda: clock.wall_ms)
        add_center(self.portal.engine, "c1", "Center one", now=clock.wall_ms)
        self.admin = create_admin_token(self.portal.engine, "op", "operator", now=clock.wall_ms)
        self.server = LiveServer(create_app(self.settings, portal=self.portal))
        self.server.start()
        self.url = self.server.url
        self.http = httpx.Client(base_url=self.url, timeout=30)


def issue_card(live: ClockedPortal, now: int) -> SunCard:
    """The city's office: grant, sealed keys for the station, personalise, activate."""
    engine, data_dir = live.portal.engine, live.settings.data_dir
    master = load_or_create_card_master(data_dir)
    grant = create_grant(engine, 1, 3_600_000, URL, now=now)
    # The station enrolls its own key with the grant, then signs each request.
    identity = Ed25519PrivateKey.generate()
    enroll_station(engine, grant, public_key_b64(identity), now=now)

    def signed(path: str, body: bytes, at: int) -> StationRequest:
        auth = station_authorization(identity, "POST", path, at, body)
        return StationRequest(auth, "POST", path, body)

    station = X25519PrivateKey.generate()
    keys = signed("/api/v1/cards/keys", UID.encode(), now)
    sealed = station_keys(
        engine, master, live.portal.key, keys, UID, x25519_public_b64(station), False, now=now
    )
    bundle = open_bundle(sealed, UID, station, live.portal.key.public_key())
    sun = personalised_card(bytes.fromhex(UID), bundle)
    message = parse_sun_ndef(skim(sun))  # the station's read-back after personalising
    assert message is not None
    done = signed("/api/v1/cards/activate", message.mac, now + 1)
    activate_card(engine, master, done, UID, message.picc.hex(), message.mac.hex(), now=now + 1)
    return sun


def skim(sun: SunCard) -> bytes:
    """Read the card's NDEF file out of the door reader's field (a phone, a skimmer)."""
    activated = drive(activate(halt=False), sun.card)
    assert activated.uid.hex().upper() == UID
    link = IsoDep()
    drive(link.rats(), sun.card)
    ndef = drive(read_ndef_file(link), sun.card)
    drive(link.deselect(), sun.card)
    sun.card.power_cycle()
    assert isinstance(ndef, bytes)
    return ndef


class Club:
    """The daemon at the club door and the hands that tap cards or root the Pi."""

    def __init__(self, daemon: Daemon, board: EmulatedBoard, clock: ManualClock) -> None:
        self.daemon, self.board, self.clock = daemon, board, clock
        assert daemon.store is not None
        self.store = daemon.store
        self.badges: list[dict[str, Any]] = []
        self.store.add_listener(lambda r: self.badges.append(r) if r["type"] == "badge" else None)

    def uploaded(self) -> None:
        wait_until(lambda: self.store.pending_count == 0, what="the upload of every record")

    def jump(self, at_ms: int) -> None:
        """The week between two lessons, in one step (the Pi idles: nothing to reconcile)."""
        self.clock.advance(max(0, at_ms - self.clock.wall_ms) / 1000)
        self.daemon.write_heartbeat()
        self.uploaded()

    def until(self, at_ms: int, *, beat_ms: int = 10 * MIN_MS) -> None:
        """Let manual time pass to ``at_ms`` with the daemon's heartbeat every 10 minutes."""
        while self.clock.wall_ms < at_ms:
            self.clock.advance(min(beat_ms, at_ms - self.clock.wall_ms) / 1000)
            self.daemon.write_heartbeat()
            self.uploaded()

    def tap(self, card: EmulatedCard) -> dict[str, Any]:
        """A child holds ``card`` to the reader until its badge record is written."""
        before = len(self.badges)
        self.board.chip.add_card(card)
        wait_until(lambda: len(self.badges) > before, what="the badge record")
        self.board.chip.remove_card(card)
        time.sleep(0.5)  # gone for the presence tracker's polls and repeat window
        self.uploaded()
        return self.badges[-1]

    def rooted_badge(self, uid: str, card: dict[str, str] | None) -> None:
        """Root on the Pi: a badge record of its own, signed with the device key."""
        data: dict[str, Any] = {"reader": "entrance", "driver": "mfrc522", "uid": uid}
        data["uid_len"] = len(uid) // 2
        if card is not None:
            data["card"] = card
        self.store.write("badge", data)
        self.uploaded()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(wall_ms=local_ms(DAY0, clock_time(14, 0), ZONE))


@pytest.fixture
def live(tmp_path: Path, clock: ManualClock) -> Iterator[ClockedPortal]:
    portal = ClockedPortal(tmp_path / "portal", clock)
    yield portal
    portal.close()


@pytest.fixture
def club(
    tmp_path: Path, live: ClockedPortal, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Club]:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    readers = (
        '[[readers]]\nname = "entrance"\ndriver = "mfrc522"\npoll_ms = 20\n'
        "absent_polls = 2\nrepeat_window_ms = 200\n"
    )
    device = make_device(tmp_path / "device", live, readers=readers, heartbeat_s=3600)
    with installed():
        GPIO.reset()
        board = EmulatedBoard(now=time.monotonic, reset_pin=25).plug_into_fakes()
        daemon = Daemon(load_config(device.config_path), clock=clock)
        daemon.open()
        daemon.start()
        try:
            yield Club(daemon, board, clock)
        finally:
            daemon.stop_event.set()
            daemon.shutdown()
            board.close()
            GPIO.reset()


def lesson(week: int) -> tuple[date, int, int]:
    day = DAY0 + timedelta(days=7 * week)
    return day, local_ms(day, clock_time(15, 0), ZONE), local_ms(day, clock_time(16, 30), ZONE)


def reconcile(live: ClockedPortal, day: date) -> dict[str, tuple[str, tuple[str, ...]]]:
    engine, data_dir = live.portal.engine, live.settings.data_dir
    result = run_reconciliation(engine, day, day, SETTINGS, ZONE, cards=card_book(engine, data_dir))
    return {row.child_id: (row.status, tuple(row.reasons)) for row in result.rows}


def test_genuine_cards_verify_and_clones_forgeries_and_replays_are_caught(
    live: ClockedPortal, club: Club, clock: ManualClock
) -> None:
    engine = live.portal.engine
    sun = issue_card(live, clock.wall_ms)
    confirmations = "".join(
        f"K{k},G1,{lesson(w)[0].isoformat()},{lesson(w)[0].isoformat()} 20:00,parent{k}\n"
        for w in range(WEEKS)
        for k in (1, 2)
    )
    files = {
        "schedule": b"group_id,center_id,weekday,start,end,price_kzt\nG1,c1,1,15:00,16:30,3000\n",
        "roster": f"child_id,badge_uid,center_id,group_id\nK1,{UID},c1,G1\nK2,{OTHER},c1,G1\n",
        "confirmations": "child_id,group_id,date,confirmed_at,signer\n" + confirmations,
    }
    for kind, data in files.items():
        raw = data if isinstance(data, bytes) else data.encode()
        apply_import(engine, kind, raw, f"{kind}.csv", now=clock.wall_ms)
    # Before the first lesson the club reads K1's card with a phone and keeps the
    # message, to release it on a day the child stays home.
    skimmed = parse_sun_ndef(skim(sun))
    assert skimmed is not None

    verdicts: list[dict[str, tuple[str, tuple[str, ...]]]] = []
    genuine: dict[str, Any] = {}
    for week in range(WEEKS):
        day, start, end = lesson(week)
        club.jump(start - 20 * MIN_MS)
        club.until(start + 5 * MIN_MS)
        if week == 0:  # both children come, each with their own card
            genuine = club.tap(sun.card)
            assert genuine["data"]["card"]["kind"] == KIND
            assert club.tap(EmulatedCard(OTHER))["data"].get("card") is None
        elif week == 1:  # a UID clone of K1's card; K2's UID card, now that cards are required
            clone = club.tap(EmulatedCard(UID))
            assert clone["data"]["uid"] == UID and "card" not in clone["data"]
            club.tap(EmulatedCard(OTHER))
        elif week == 2:  # the rooted Pi makes up K1's card object
            forged = dict(genuine["data"]["card"], mac=os.urandom(8).hex().upper())
            club.rooted_badge(UID, forged)
        elif week == 3:  # ... or sends the message of week 0's genuine read again
            club.rooted_badge(UID, dict(genuine["data"]["card"]))
        else:  # ... or releases the message skimmed before week 0
            club.rooted_badge(
                UID,
                {
                    "kind": KIND,
                    "picc": skimmed.picc.hex().upper(),
                    "mac": skimmed.mac.hex().upper(),
                },
            )
        club.until(end + 15 * MIN_MS)
        verdicts.append(reconcile(live, day))
        if week == 0:
            set_require_card_auth(engine, "c1", True)  # the center now has SUN cards

    assert verdicts[0] == {"K1": ("verified", ()), "K2": ("verified", ())}
    assert verdicts[1] == {
        "K1": ("suspect", ("card_not_authenticated",)),
        "K2": ("suspect", ("card_not_authenticated",)),
    }
    assert verdicts[2]["K1"] == ("suspect", ("card_not_authenticated",))
    assert verdicts[3]["K1"] == ("suspect", ("card_replayed",))
    assert verdicts[4]["K1"] == ("suspect", ("card_replayed",))
    # Week 0 still holds when reconciled again after everything else was accepted.
    assert reconcile(live, lesson(0)[0])["K1"] == ("verified", ())
