"""A red team's bench: Pis that sign real records and upload them through the real ingest.

A :class:`City` is one portal store with centers, groups, children and Pis. A
:class:`Pi` holds an Ed25519 key and a chain like the agent (seq, prev, boot id,
monotonic clock, the newest receipt as ``anchor``) and uploads what it wrote
through the portal's own ingest: :func:`portal.ingest.batch.ingest_batch` by
default, or the HTTP app (:class:`HttpUplink`, one client address per Pi).
Nothing here decides a status: the schedule, roster and confirmations go in
through :func:`portal.reconcile.store.apply_import` and the verdict comes from
:func:`portal.reconcile.store.run_reconciliation`, as for a real city.

Everything happens in simulated time: records, uploads and receipts are events
of one queue, played in time order, so the portal's receipts carry the times a
real portal would have signed.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from agent.protocol import ZERO_HASH, build_record, public_key_b64
from portal.db.schema import receipts, records
from portal.ingest.batch import ingest_batch
from portal.ingest.receipts import cursor_receipt
from portal.reconcile.engine import Result, Row
from portal.reconcile.lessons import load_zone, local_ms
from portal.reconcile.model import ReconcileSettings
from portal.reconcile.store import apply_import, run_reconciliation
from portal.registry import add_center, create_enroll_token, enroll_device
from portal.state import Portal

ZONE = load_zone("Asia/Almaty")
DAY = date(2024, 6, 3)  # a Monday (weekday 1), UTC+5
S = 1000
MIN = 60 * S
HOUR = 60 * MIN
DAYS = 24 * HOUR
# Devices are installed (and booted) months before the period, as in the honest model
# (not more than 104 days: mono_ns reaches 2**53, the protocol's integer limit, there).
INSTALLED = local_ms(DAY - timedelta(days=90), time(11, 0), ZONE)
HEARTBEAT = 5 * MIN
UPLOAD_DELAY = 1500  # a connected agent sends what it wrote within a second or two
HARDWARE = {"main": "mfrc522"}


def at(hhmm: str, day: date = DAY, seconds: float = 0.0) -> int:
    """Unix ms of a local time on ``day`` (``"14:05"``), plus ``seconds``."""
    return local_ms(day, time.fromisoformat(hhmm), ZONE) + round(seconds * S)


def local(ms: int) -> str:
    """``YYYY-MM-DD HH:MM`` local, the confirmations' format."""
    return datetime.fromtimestamp(ms / S, ZONE).strftime("%Y-%m-%d %H:%M")


class Uplink(Protocol):
    def post(self, pi: Pi, batch: list[dict[str, Any]], now: int) -> dict[str, Any]: ...

    def cursor(self, pi: Pi, now: int) -> tuple[int, str]: ...


@dataclass
class DirectUplink:
    """The portal's ingest called in-process (what the HTTP route calls)."""

    portal: Portal

    def post(self, pi: Pi, batch: list[dict[str, Any]], now: int) -> dict[str, Any]:
        outcome = ingest_batch(self.portal.engine, self.portal.key, pi.device_id, batch, now=now)
        assert outcome.status == 200, outcome.body()
        return dict(outcome.receipt)

    def cursor(self, pi: Pi, now: int) -> tuple[int, str]:
        r = cursor_receipt(self.portal.engine, self.portal.key, pi.device_id, now)
        return int(r["seq"]), str(r["record_hash"])


@dataclass
class SimClock:
    """The portal's clock under the live server: set to each event's time before a call."""

    ms: int = 0

    def __call__(self) -> int:
        return self.ms


@dataclass
class HttpUplink:
    """The live app over HTTP from one local address (a Pi on its own network line)."""

    url: str
    clock: SimClock
    address: str = "127.0.0.1"
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        transport = httpx.HTTPTransport(local_address=self.address)
        self.client = httpx.Client(base_url=self.url, transport=transport, timeout=30)

    def post(self, pi: Pi, batch: list[dict[str, Any]], now: int) -> dict[str, Any]:
        self.clock.ms = now
        r = self.client.post(f"/api/v1/devices/{pi.device_id}/records", json={"records": batch})
        assert r.status_code == 200, r.text
        receipt: dict[str, Any] = r.json()["receipt"]
        return receipt

    def cursor(self, pi: Pi, now: int) -> tuple[int, str]:
        self.clock.ms = now
        r = self.client.get(f"/api/v1/devices/{pi.device_id}/cursor")
        assert r.status_code == 200, r.text
        receipt = r.json()["receipt"]
        return int(receipt["seq"]), str(receipt["record_hash"])

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class Kid:
    child_id: str
    uid: str


class Pi:
    """One entrance device: a key, a chain, a boot, a clock, and an uplink.

    A second Pi built with ``clone_of`` holds the same key and device id (a copied SD
    card); ``follow_cursor`` makes it, or the original, ask ``/cursor`` before each
    record and continue the chain from the portal's head, as a clone must.
    """

    def __init__(
        self,
        city: City,
        center_id: str,
        *,
        readers: Mapping[str, str] = HARDWARE,
        doors: Sequence[str] = ("front",),
        synced: bool = True,
        clock_error_ms: int = 0,
        installed: int | None = INSTALLED,
        uplink: Uplink | None = None,
        clone_of: Pi | None = None,
        boot_id: str | None = None,
        booted_ms: int | None = None,
    ) -> None:
        self.city = city
        self.center_id = center_id
        self.readers = dict(readers)
        self.synced = synced
        self.clock_error_ms = clock_error_ms
        self.uplink: Uplink = uplink or city.uplink
        self.follow_cursor = False
        self.seq, self.prev, self.anchor = 0, ZERO_HASH, ""
        self.receipts: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []
        self.upload_due = False
        self.outages: list[tuple[int, int]] = []
        self.lost_answers: set[int] = set()
        if clone_of is not None:
            self.key = clone_of.key
            self.device_id = clone_of.device_id
        else:
            self.key = Ed25519PrivateKey.generate()
            self.device_id = city.enroll(center_id, self.key)
        self.boot_id = boot_id or str(uuid.uuid4())
        self.boot_ms = booted_ms if booted_ms is not None else (installed or 0) - 20 * S
        if installed is not None:
            self.city.schedule(
                installed, lambda: self._write("boot", installed, self._boot_data(doors))
            )

    # --- what the device writes ----------------------------------------------------

    def _boot_data(self, doors: Sequence[str]) -> dict[str, Any]:
        # The agent's own boot record (agent/daemon/boot.py): readers, their drivers,
        # which driver reads as which reader, and the door sensors.
        return {
            "agent_version": "0.1.0",
            "config_sha256": "0" * 64,
            "drivers": sorted(set(self.readers.values())),
            "readers": list(self.readers),
            "reader_drivers": dict(self.readers),
            "port_schemes": {},
            "doors": list(doors),
        }

    def reboot(
        self, t: int, doors: Sequence[str] = ("front",), readers: Mapping[str, str] | None = None
    ) -> None:
        """Power back on at ``t``: a new boot id, the monotonic clock from zero, a boot record."""

        def go() -> None:
            self.boot_id = str(uuid.uuid4())
            self.boot_ms = t - 20 * S
            if readers is not None:
                self.readers = dict(readers)
            self._write("boot", t, self._boot_data(doors))

        self.city.schedule(t, go)

    def record(self, t: int, type: str, data: Mapping[str, Any], **over: Any) -> None:
        """Write a record at true time ``t``; ``over`` replaces fields (wall_ms, anchor, ...)."""
        self.city.schedule(t, lambda: self._write(type, t, dict(data), **over))

    def heartbeats(self, lo: int, hi: int) -> None:
        for t in range(lo, hi + 1, HEARTBEAT):
            self.record(t, "heartbeat", {"pending": 0})

    def tap(self, t: int, kid: Kid | str, reader: str = "main", driver: str | None = None) -> None:
        uid = kid.uid if isinstance(kid, Kid) else kid
        data = {
            "reader": reader,
            "driver": driver or self.readers.get(reader, "mfrc522"),
            "uid": uid,
            "uid_len": len(uid) // 2,
        }
        self.record(t, "badge", data)

    def door(self, t: int, state: str, sensor: str = "front") -> None:
        self.record(t, "door", {"sensor": sensor, "state": state})

    def cluster(
        self,
        t: int,
        kids: Sequence[Kid | str],
        gaps: Sequence[float] = (),
        readers: Sequence[str] = ("main",),
        *,
        door: bool = True,
        close_after: float = 8.0,
    ) -> int:
        """Children coming in together: the door opens 2 s before the first tap, each taps
        ``gaps`` seconds after the one before (at ``readers`` in turn), the door closes
        ``close_after`` seconds after the last. Returns the time of the last tap."""
        if door:
            self.door(t - 2 * S, "open")
        when = t
        for n, kid in enumerate(kids):
            if n:
                when += round(gaps[(n - 1) % len(gaps)] * S)
            self.tap(when, kid, readers[n % len(readers)])
        if door:
            self.door(when + round(close_after * S), "closed")
        return when

    def outage(self, lo: int, hi: int, *, lost_answer: bool = False) -> None:
        """No upload reaches the portal from ``lo`` to ``hi``; everything goes at ``hi``.

        ``lost_answer``: at ``lo`` the device sends a heartbeat, the portal stores it and
        signs a receipt, and the answer never arrives (the device keeps its old anchor).
        """
        if lost_answer:
            self.lost_answers.add(lo)
            self.record(lo - 1, "heartbeat", {"pending": 0})
            self.city.schedule(lo, lambda: self._upload(lo, force=True))
        self.outages.append((lo, hi))
        self.city.schedule(hi, lambda: self._upload(hi))

    def switch_uplink(self, t: int, uplink: Uplink) -> None:
        """From ``t`` on, upload through ``uplink`` (a new address, say)."""

        def go() -> None:
            self.uplink = uplink

        self.city.schedule(t, go)

    def receipt_at(self, ms: int) -> str:
        """The hash of the first receipt this Pi got at or after portal time ``ms``."""
        return next(str(r["hash"]) for r in self.receipts if int(r["server_ms"]) >= ms)

    def _offline(self, t: int) -> bool:
        return any(lo <= t < hi for lo, hi in self.outages)

    def _write(self, type: str, t: int, data: dict[str, Any], **over: Any) -> None:
        if self.follow_cursor:
            self.seq, self.prev = self.uplink.cursor(self, t)
        self.seq += 1
        fields: dict[str, Any] = {
            "device": self.device_id,
            "seq": self.seq,
            "prev": self.prev,
            "type": type,
            "wall_ms": t + self.clock_error_ms,
            "synced": self.synced,
            "boot": self.boot_id,
            "mono_ns": max(t - self.boot_ms, 0) * 1_000_000,
            "anchor": self.anchor,
            "data": data,
        }
        # An override may be a function: evaluated now, when the receipts it names exist.
        fields.update({k: v() if callable(v) else v for k, v in over.items()})
        rec = build_record(self.key, **fields)
        self.prev = rec["hash"]
        self.pending.append(rec)
        if self.follow_cursor:
            self._upload(t)  # a clone cannot leave a tail: the other Pi would fork it
        elif not self.upload_due:
            self.upload_due = True
            self.city.schedule(t + UPLOAD_DELAY, lambda: self._upload(t + UPLOAD_DELAY))

    def _upload(self, now: int, *, force: bool = False) -> None:
        self.upload_due = False
        if not self.pending or (self._offline(now) and not force):
            return
        receipt = self.uplink.post(self, self.pending, now)
        if now in self.lost_answers:
            return  # stored and signed by the portal, never heard by the device
        self.receipts.append(receipt)
        self.anchor = str(receipt["hash"])
        self.pending = []


class City:
    """One portal store, its centers, groups, children and Pis, played in simulated time."""

    def __init__(self, portal: Portal, uplink: Uplink | None = None, day: date = DAY) -> None:
        self.portal = portal
        self.day = day  # the one date of the scene: lessons, confirmations, the report
        self.installed = local_ms(day - timedelta(days=90), time(11, 0), ZONE)
        self.engine = portal.engine
        self.uplink: Uplink = uplink or DirectUplink(portal)
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._uids = itertools.count(0x04A10000)
        self.centers: set[str] = set()
        self.group_center: dict[str, str] = {}
        self.schedule_lines: list[str] = []
        self.roster_lines: list[str] = []
        self.confirmation_lines: list[str] = []
        self.result: Result | None = None

    # --- the city's registry and files ---------------------------------------------

    def enroll(self, center_id: str, key: Ed25519PrivateKey) -> str:
        if center_id not in self.centers:
            add_center(self.engine, center_id, f"Центр {center_id}", now=self.installed - DAYS)
            self.centers.add(center_id)
        enrolled = self.installed - HOUR
        token = create_enroll_token(self.engine, center_id, HOUR, now=enrolled)
        done = enroll_device(
            self.engine, token, public_key_b64(key), "0.1.0", {"model": "pi"}, now=enrolled
        )
        return done.device_id

    def pi(self, center_id: str, **kw: Any) -> Pi:
        kw.setdefault("installed", self.installed)
        return Pi(self, center_id, **kw)

    def group(
        self,
        group_id: str,
        center_id: str,
        start: str = "15:00",
        end: str = "16:30",
        *,
        weekday: int = 1,
        price: int = 3000,
        valid_from: date | None = None,
        valid_to: date | None = None,
    ) -> str:
        """A schedule line (kept for the first import); returns it for later files."""
        self.group_center[group_id] = center_id
        line = schedule_line(group_id, center_id, start, end, weekday, price, valid_from, valid_to)
        self.schedule_lines.append(line)
        return line

    def kid(self, child_id: str, *groups: str) -> Kid:
        kid = Kid(child_id, f"{next(self._uids):08X}")
        for g in groups:
            self.enrol(kid, g)
        return kid

    def enrol(self, kid: Kid, group_id: str) -> None:
        self.roster_lines.append(
            f"{kid.child_id},{kid.uid},{self.group_center[group_id]},{group_id},Бала {kid.child_id}"
        )

    def kids(self, prefix: str, n: int, *groups: str) -> list[Kid]:
        return [self.kid(f"{prefix}{i}", *groups) for i in range(1, n + 1)]

    def confirm(
        self, kid: Kid, group_id: str, *, at_ms: int | None = None, signer: str | None = None
    ) -> None:
        when = local(at_ms if at_ms is not None else at("20:00", self.day))
        who = signer if signer is not None else f"Родитель {kid.child_id}"
        self.confirmation_lines.append(f"{kid.child_id},{group_id},{self.day},{when},{who}")

    def import_all(
        self, *, schedule_at: int | None = None, confirmations_at: int | None = None
    ) -> None:
        """Schedule and roster long before the period, confirmations after it."""
        before = self.installed if schedule_at is None else schedule_at
        self.import_file("schedule", self.schedule_lines, now=before)
        self.import_file("roster", self.roster_lines, now=before)
        if self.confirmation_lines:
            self.import_file(
                "confirmations",
                self.confirmation_lines,
                now=confirmations_at
                if confirmations_at is not None
                else at("10:00", self.day) + DAYS * 6,
            )

    def import_file(self, kind: str, lines: Iterable[str], *, now: int) -> None:
        apply_import(self.engine, kind, csv(kind, lines), f"{kind}.csv", now=now)

    # --- simulated time ------------------------------------------------------------

    def schedule(self, t: int, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (t, next(self._order), action))

    def play(self) -> None:
        while self._queue:
            _, _, action = heapq.heappop(self._queue)
            action()

    # --- the verdict ---------------------------------------------------------------

    def reconcile(self, settings: ReconcileSettings | None = None) -> Result:
        self.play()
        self.result = run_reconciliation(
            self.engine, self.day, self.day, settings or ReconcileSettings(), ZONE
        )
        return self.result

    def row(self, kid: Kid, group_id: str) -> Row:
        assert self.result is not None, "reconcile first"
        rows = [
            r for r in self.result.rows if r.child_id == kid.child_id and r.group_id == group_id
        ]
        assert len(rows) == 1, (kid, group_id, rows)
        return rows[0]

    def status(self, kid: Kid, group_id: str) -> tuple[str, tuple[str, ...]]:
        r = self.row(kid, group_id)
        return r.status, r.reasons

    # --- what the portal holds (to check that a scene is the one it claims) -------

    def stored(self, pi: Pi, type: str | None = None) -> list[Stored]:
        query = select(
            records.c.seq,
            records.c.type,
            records.c.boot,
            records.c.mono_ns,
            records.c.anchor,
            records.c.received_ms,
        ).where(records.c.device_id == pi.device_id)
        if type is not None:
            query = query.where(records.c.type == type)
        with self.engine.connect() as conn:
            return [Stored(*r) for r in conn.execute(query.order_by(records.c.seq))]

    def receipt_times(self, pi: Pi) -> dict[str, int]:
        """The portal's receipts for the device: hash -> server_ms."""
        query = select(receipts.c.hash, receipts.c.server_ms).where(
            receipts.c.device_id == pi.device_id
        )
        with self.engine.connect() as conn:
            return {h: int(ms) for h, ms in conn.execute(query)}


@dataclass(frozen=True)
class Stored:
    seq: int
    type: str
    boot: str
    mono_ns: int
    anchor: str
    received_ms: int


HEADERS = {
    "schedule": "group_id,center_id,weekday,start,end,price_kzt,valid_from,valid_to",
    "roster": "child_id,badge_uid,center_id,group_id,child_name",
    "confirmations": "child_id,group_id,date,confirmed_at,signer",
}


def csv(kind: str, lines: Iterable[str]) -> bytes:
    return "\n".join([HEADERS[kind], *lines, ""]).encode()


def schedule_line(
    group_id: str,
    center_id: str,
    start: str,
    end: str,
    weekday: int = 1,
    price: int = 3000,
    valid_from: date | None = None,
    valid_to: date | None = None,
) -> str:
    a = valid_from.isoformat() if valid_from else ""
    b = valid_to.isoformat() if valid_to else ""
    return f"{group_id},{center_id},{weekday},{start},{end},{price},{a},{b}"
