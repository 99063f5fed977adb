"""Proven time and stale anchors (docs/reconciliation.md, How times are checked).

A read's time is proven when its two receipts (anchor and first cover) both lie
within the proof bracket of it, whatever the device says about its clock. An
honest club through a short outage stays verified; through a long one its reads
are present_unproven (unverifiable, never at risk). A read naming an anchor older
than a receipt the device provably had is stale_anchor.
"""

from __future__ import annotations

from typing import Any

import pytest

from portal.ingest.batch import ingest_batch
from portal.reconcile import rules
from portal.reconcile.model import DeviceLog, ReconcileSettings
from portal.reconcile.store import DAY_MS, apply_import, run_reconciliation
from portal.reconcile.totals import totals
from portal.reconcile.trusted_time import Placed, place, proven, stale_anchors
from portal.registry import add_center, create_enroll_token, enroll_device
from portal.state import Portal

from .pi import Pi, day
from .support import DAY, MIN, START, ZONE, S, confirm, run, status

T0 = START
TOL = 120 * S
PROOF = 900 * S


def judged(log: DeviceLog) -> tuple[list[bool], list[bool]]:
    """(trusted, proven) of every record."""
    placed: Placed = place(log, TOL)
    return placed.trusted, proven(log, placed, PROOF, list(range(len(log))))


def one(claim: int, anchor: int | None, covered: int | None, synced: bool = True) -> DeviceLog:
    log = DeviceLog("D1", "C1")
    log.append(
        seq=1,
        type="badge",
        wall_ms=claim,
        synced=synced,
        boot="b",
        mono_ns=1,
        anchor_ms=anchor,
        covered_ms=covered,
        data=None,
    )
    return log


# --- place(): a clock without NTP, corrected by its receipts ---------------------------


def unsynced_device(offset_ms: int, upload_every_ms: int = 60 * S) -> tuple[DeviceLog, list[int]]:
    """A never-synced device whose clock is ``offset_ms`` off, a record every 10 s and an
    upload every ``upload_every_ms``; returns the log and each record's real time."""
    log, real = DeviceLog("D1", "C1"), []
    for k in range(60):
        at = T0 + k * 10 * S
        sent = (at // upload_every_ms) * upload_every_ms  # the receipt before the record
        log.append(
            seq=k + 1,
            type="badge",
            wall_ms=at + offset_ms,
            synced=False,
            boot="b",
            mono_ns=k * 10 * S * 1_000_000,
            anchor_ms=sent if sent > T0 else None,
            covered_ms=sent + upload_every_ms,
            data=None,
        )
        real.append(at)
    return log, real


@pytest.mark.parametrize("offset_s", [-90, -40, 40, 90])
def test_a_drifting_clock_without_ntp_is_placed_by_its_receipts(offset_s: int) -> None:
    log, real = unsynced_device(offset_s * S)
    placed = place(log, TOL)
    assert all(placed.trusted)
    # Within one upload interval of the truth, not the clock's 40-90 s error.
    assert max(abs(t - r) for t, r in zip(placed.times, real, strict=True)) <= 60 * S
    assert max(abs(t - r) for t, r in zip(placed.times, real, strict=True)) < abs(offset_s) * S


def test_a_clock_within_what_the_receipts_allow_keeps_its_claims() -> None:
    log, _ = unsynced_device(0)
    assert place(log, TOL).times == log.wall_ms


def test_a_clock_off_by_more_than_the_tolerance_is_not_corrected_away() -> None:
    log, _ = unsynced_device(10 * MIN)
    placed = place(log, TOL)
    assert placed.times == log.wall_ms  # its claims, judged by the bounds
    assert not any(placed.trusted)  # and time_untrusted: a wrong clock stays visible


# --- place(): proven ------------------------------------------------------------------


@pytest.mark.parametrize("synced", [True, False])
def test_receipts_within_the_bracket_prove_the_time_whatever_synced_says(synced: bool) -> None:
    assert judged(one(T0, T0 - PROOF, T0 + PROOF, synced)) == ([True], [True])


def test_one_ms_beyond_the_bracket_on_either_side_is_unproven_but_trusted() -> None:
    assert judged(one(T0, T0 - PROOF - 1, T0 + 10 * S)) == ([True], [False])
    assert judged(one(T0, T0 - 10 * S, T0 + PROOF + 1)) == ([True], [False])


def test_a_missing_bound_proves_nothing() -> None:
    assert judged(one(T0, None, T0 + 1)) == ([True], [False])
    assert judged(one(T0, T0 - 1, None)) == ([True], [False])


def test_an_untrusted_time_is_never_proven() -> None:
    # Tight receipts, but the claim lies an hour before them: provably wrong.
    assert judged(one(T0 - 3600 * S, T0 - 10 * S, T0 + 10 * S)) == ([False], [False])


# --- the engine: honest outages ---------------------------------------------------------

TAP = START - 10 * MIN


def test_a_connected_honest_club_is_verified() -> None:
    pi = day(Pi(), [TAP])
    assert status(run([pi.log], [confirm()])) == ("verified", ())


@pytest.mark.parametrize("lost_answer", [False, True])
def test_a_short_outage_under_the_bracket_stays_verified(lost_answer: bool) -> None:
    # Cut off 6 min before the tap for 13 min: its anchor (the last answer received, at
    # most a heartbeat earlier, or two with the answer lost) and its first cover (the
    # reconnection) both lie within 15 min of it.
    pi = day(Pi(), [TAP], outage=(TAP - 6 * MIN, TAP + 7 * MIN), lost_answer=lost_answer)
    assert status(run([pi.log], [confirm()])) == ("verified", ())


@pytest.mark.parametrize("lost_answer", [False, True])
def test_a_long_outage_makes_the_row_unproven_never_at_risk(lost_answer: bool) -> None:
    pi = day(Pi(), [TAP], outage=(TAP - 40 * MIN, TAP + 2 * 3600 * S), lost_answer=lost_answer)
    result = run([pi.log], [confirm()])
    assert status(result) == ("present_unproven", ())
    money = totals(result)["all"]
    assert money["kzt_unverifiable"] == 3000 and money["kzt_at_risk"] == 0
    assert rules.PRESENT_UNPROVEN in rules.UNVERIFIABLE


def test_without_the_proof_rule_the_long_outage_would_pass_as_verified() -> None:
    # The bracket is what decides: as wide as the outage, the same row is verified.
    pi = day(Pi(), [TAP], outage=(TAP - 40 * MIN, TAP + 2 * 3600 * S))
    wide = ReconcileSettings(proof_bracket_ms=3 * 3600 * S)
    assert status(run([pi.log], [confirm()], settings=wide)) == ("verified", ())


def test_a_device_that_never_syncs_is_verified_by_its_receipts() -> None:
    pi = Pi()
    day(pi, [TAP])
    pi.log.synced = [False] * len(pi.log)
    assert status(run([pi.log], [confirm()])) == ("verified", ())


# --- stale_anchor -------------------------------------------------------------------------


def _stale(log: DeviceLog) -> list[bool]:
    return stale_anchors(log, place(log, TOL).times, TOL, list(range(len(log))))


def test_an_anchor_going_back_along_the_chain_is_stale() -> None:
    pi = day(Pi(), [])
    good = pi.anchor
    pi.record("heartbeat", START + 4 * 3600 * S + MIN, anchor=START - 3600 * S)
    stale = _stale(pi.log)
    assert stale[-1] and not any(stale[:-1])
    assert good is not None and good > START


def test_an_empty_anchor_after_receipts_is_stale_before_the_first_it_is_not() -> None:
    pi = Pi()
    pi.online = False
    pi.record("heartbeat", START - 3600 * S)  # made before any receipt: anchor ""
    pi.reconnect(START - 3600 * S + 20 * S)
    pi.record("heartbeat", START - 3000 * S, anchor=False)  # "" again, online
    pi.record("heartbeat", START - 2700 * S, anchor=False)
    # The second: one answer since, which may have been lost. The third: two.
    assert _stale(pi.log) == [False, False, True]


def test_two_answers_after_the_anchor_make_it_stale_one_does_not() -> None:
    # The device kept naming an old receipt; the portal had answered it since.
    log = one(T0, T0 - 600 * S, T0 + 5 * S)
    log.receipt_ms = [T0 - 600 * S, T0 - 300 * S]
    assert _stale(log) == [False]  # one answer: may be the one lost before an outage
    log.receipt_ms = [T0 - 600 * S, T0 - 300 * S, T0 - 200 * S]
    assert _stale(log) == [True]
    log.receipt_ms = [T0 - 600 * S, T0 - 300 * S, T0 - TOL + 1]  # the second within tolerance
    assert _stale(log) == [False]


@pytest.mark.parametrize("hours", [0.2, 2, 30])
def test_an_honest_lost_answer_before_an_outage_is_not_stale(hours: float) -> None:
    out = int(hours * 3600 * S)
    pi = day(Pi(), [TAP], outage=(TAP - 6 * MIN, TAP - 6 * MIN + out), lost_answer=True)
    assert not any(_stale(pi.log))
    got = status(run([pi.log], [confirm()]))
    assert got[0] in ("verified", "present_unproven") and got[1] == ()


def test_backdated_reads_made_online_with_an_empty_anchor_are_suspect() -> None:
    # Online all day; after the lesson the device appends a read claiming the lesson's
    # time with anchor "" (or any receipt older than its heartbeats name).
    pi = day(Pi(), [])
    at = START + 4 * 3600 * S + 2 * MIN  # after the day's last heartbeat
    badge = {"reader": "main", "driver": "mfrc522", "uid": "04A1B2C3", "uid_len": 4}
    pi.record("door", at - 3 * S, {"sensor": "front", "state": "open"}, claim=TAP - 3 * S)
    pi.record("badge", at, badge, claim=TAP, anchor=False)
    got = status(run([pi.log], [confirm()]))
    assert got[0] == "suspect" and "stale_anchor" in got[1]


def test_backdated_reads_naming_the_receipt_just_before_their_claim_are_not_verified() -> None:
    # The anchor the attacker picks is the genuine receipt of the lesson's time; the
    # chain shows it going back (later heartbeats named newer ones): stale_anchor.
    pi = day(Pi(), [])
    old = max(r for r in pi.log.receipt_ms if r < TAP)
    at = START + 4 * 3600 * S + 2 * MIN  # after the day's last heartbeat
    badge = {"reader": "main", "driver": "mfrc522", "uid": "04A1B2C3", "uid_len": 4}
    pi.record("door", at - 3 * S, {"sensor": "front", "state": "open"}, claim=TAP - 3 * S)
    pi.record("badge", at, badge, claim=TAP, anchor=old)
    got = status(run([pi.log], [confirm()]))
    assert got[0] == "suspect" and "stale_anchor" in got[1]


def test_a_frozen_anchor_escapes_stale_anchor_but_not_the_proof() -> None:
    # The attack that beats stale_anchor: stop moving the anchor from the lesson's time
    # on (every later record names the same old receipt), then append the backdated
    # read. Its first cover is hours after its claim: present_unproven, not verified.
    pi = day(Pi(), [])
    old = max(r for r in pi.log.receipt_ms if r < TAP)
    pi.log.anchor_ms = [old if a is not None and a > old else a for a in pi.log.anchor_ms]
    at = START + 4 * 3600 * S + 2 * MIN  # after the day's last heartbeat
    badge = {"reader": "main", "driver": "mfrc522", "uid": "04A1B2C3", "uid_len": 4}
    door = {"sensor": "front", "state": "open"}
    pi.record("door", at - 3 * S, door, claim=TAP - 3 * S, anchor=old)
    pi.record("badge", at, badge, claim=TAP, anchor=old)
    stale = _stale(pi.log)
    badge_at = max(i for i, t in enumerate(pi.log.type) if t == "badge")
    assert not stale[badge_at]
    assert status(run([pi.log], [confirm()])) == ("present_unproven", ())


# --- through the real ingest and store (receipt timeline from the database) ---------------


class Signed:
    """A device signing records and uploading them through ``ingest_batch``."""

    def __init__(self, store: Portal) -> None:
        from tests.portal.support import SimDevice

        self.store = store
        add_center(store.engine, "C1", "Center one", now=START - DAY_MS)
        self.key = SimDevice()
        token = create_enroll_token(store.engine, "C1", 3_600_000, now=START - DAY_MS)
        self.key.device_id = enroll_device(
            store.engine, token, self.key.public_key, "test", {}, now=START - DAY_MS
        ).device_id
        self.anchor = ""
        self.pending: list[dict[str, Any]] = []
        self.online = True
        self.use_receipts = True

    def record(self, at: int, kind: str, data: dict[str, Any], **over: Any) -> None:
        self.key.wall_ms = over.pop("claim", at) - 1000
        fields = {"mono_ns": (at - START + 10 * 3600 * S) * 1_000_000, "anchor": self.anchor}
        self.pending.append(self.key.record(kind, data, **{**fields, **over}))
        if self.online:
            self.upload(at + 1500)

    def upload(self, now: int, *, lost: bool = False) -> None:
        out = ingest_batch(
            self.store.engine, self.store.key, self.key.device_id, self.pending, now=now
        )
        assert out.status == 200, out.body()
        self.pending = []
        if not lost and self.use_receipts:
            self.anchor = out.receipt["hash"]

    def day(self, *, outage: tuple[int, int] | None = None, taps: tuple[int, ...] = (TAP,)) -> None:
        first = START - 2 * 3600 * S
        self.record(
            first, "boot", {"doors": ["front"], "readers": ["main"], "drivers": ["mfrc522"]}
        )
        events = [(t, "beat") for t in range(first + MIN, START + 2 * 3600 * S, 5 * MIN)]
        events += [(t, "tap") for t in taps]
        for at, kind in sorted(events):
            if outage is not None and self.online and outage[0] <= at < outage[1]:
                # The answer to the last upload before the outage never came back.
                self.online = False
                self.record(at, "heartbeat", {"pending": 0})
                self.upload(at + 1500, lost=True)
                continue
            if outage is not None and not self.online and at >= outage[1]:
                self.online = True
                self.upload(outage[1])
            if kind == "beat":
                self.record(at, "heartbeat", {"pending": 0})
            else:
                self.tap(at)

    def tap(self, at: int, **over: Any) -> None:
        door = {"sensor": "front", "state": "open"}
        early = {k: v - 3 * S if k == "claim" else v for k, v in over.items()}
        self.record(at - 3 * S, "door", door, **early)
        badge = {"reader": "main", "driver": "mfrc522", "uid": "04A1B2C3", "uid_len": 4}
        self.record(at, "badge", badge, **over)

    def reconcile(self) -> tuple[str, tuple[str, ...]]:
        files = {
            "schedule": b"group_id,center_id,weekday,start,end,price_kzt\n"
            b"G1,C1,1,15:00,16:30,3000\n",
            "roster": b"child_id,badge_uid,center_id,group_id\nK1,04A1B2C3,C1,G1\n",
            "confirmations": b"child_id,group_id,date,confirmed_at,signer\n"
            b"K1,G1,2024-06-03,2024-06-03 20:00,parent\n",
        }
        for kind, data in files.items():
            apply_import(self.store.engine, kind, data, f"{kind}.csv", now=START)
        result = run_reconciliation(self.store.engine, DAY, DAY, ReconcileSettings(), ZONE)
        (row,) = result.rows
        return row.status, row.reasons


def test_through_the_store_an_online_day_is_verified(store: Portal) -> None:
    device = Signed(store)
    device.day()
    assert device.reconcile() == ("verified", ())


def test_through_the_store_a_backdated_read_with_an_empty_anchor_is_stale(store: Portal) -> None:
    device = Signed(store)
    device.day(taps=())
    # Online, the attacker's tool signs a door and a read claiming the lesson's time,
    # naming no receipt (the one way to let the claim precede every receipt).
    device.tap(START + 2 * 3600 * S, claim=TAP, anchor="")
    status, reasons = device.reconcile()
    assert status == "suspect" and "stale_anchor" in reasons, (status, reasons)


def test_through_the_store_a_device_that_never_names_its_receipts_is_stale(
    store: Portal,
) -> None:
    # Every record names "": no anchor ever goes back, so only the receipt timeline the
    # store loads (the portal answered it all day) shows that it was in contact.
    device = Signed(store)
    device.use_receipts = False
    device.day()
    status, reasons = device.reconcile()
    assert status == "suspect" and "stale_anchor" in reasons, (status, reasons)


def test_through_the_store_a_lost_answer_and_a_long_outage_are_not_stale(store: Portal) -> None:
    device = Signed(store)
    device.day(outage=(TAP - 20 * MIN, TAP + 90 * MIN))
    assert device.reconcile() == ("present_unproven", ())
