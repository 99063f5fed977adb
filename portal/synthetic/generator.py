"""A synthetic city with honest behaviour, injected fraud, and the labels the rules give.

The city has centers (one device each, one reader ``main`` behind door
``front``), groups with weekly schedules, children with badges, and parents'
confirmations. Honest children arrive in clusters of up to six behind one door
opening, with gaps between taps drawn so that about one in ten is under 1.5 s;
doors are sometimes held open for a whole group; some children forget to tap
and some parents forget to confirm. Injected per lesson, one kind at a time:

- ``ghost``: confirmations for children who did not come;
- ``card_stack``: a burst of collected cards of absent children;
- ``no_door``: a tap of an absent child's card with the door shut;
- ``clock``: the device rebooted at night with its clock set back to the
  lesson and never synced, taps of absent children at the claimed time;
- ``simulated``: reads of absent children through a ``simulated`` reader;
- ``chain_hole``: records deleted just before taps of absent children, the
  hole declared as the protocol requires;
- ``offline``: the device powered off during the lesson (not fraud: the rows
  are unverifiable);
- ``no_lesson``: confirmations on a date the group does not meet.

Devices sign records with real Ed25519 keys (:func:`agent.protocol.build_record`)
and upload them through an :class:`Uplink` every ``upload_s`` of simulated time,
putting the newest receipt into ``anchor``: :class:`LocalPortal` stands in for
the portal in memory; the database path feeds the real ingest instead.

Labels: :func:`label` applies docs/reconciliation.md to the TRUE events the generator
knows (each record's true time, whether its boot was a forged-clock boot, which
records were deleted), written independently of :mod:`portal.reconcile.engine`
and deliberately naive, so that agreement between the two means something.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol import ZERO_HASH, build_receipt, build_record, seal_digest
from portal.reconcile.lessons import Lesson, ScheduleEntry, lessons, local_ms
from portal.reconcile.model import (
    Confirmation,
    DeviceLog,
    IntegrityEvent,
    Member,
    ReconcileSettings,
)

logger = logging.getLogger(__name__)

FRAUD_KINDS = ("ghost", "card_stack", "no_door", "clock", "simulated", "chain_hole")
INJECTION_KINDS = (*FRAUD_KINDS, "offline")
MIN = 60_000

_FIRST = (
    "Айгерим",
    "Нурлан",
    "Дана",
    "Арман",
    "Алия",
    "Ерлан",
    "Мадина",
    "Тимур",
    "Жанна",
    "Асель",
    "Данияр",
    "Сауле",
    "Ruslan",
    "Ольга",
    "Сергей",
    "Әлия",
)
_LAST = (
    "Ахметов",
    "Серикова",
    "Жумабаев",
    "Иванова",
    "Касымов",
    "Нурланова",
    "Оспанов",
    "Бекова",
    "Петров",
    "Төлеуова",
)


@dataclass(frozen=True, slots=True)
class CityConfig:
    centers: int = 4
    groups_per_center: int = 4
    children_per_group: int = 14
    first: date = date(2024, 2, 19)
    days: int = 21  # spans Almaty's change from UTC+6 to UTC+5 on 2024-03-01
    heartbeat_s: int = 300
    upload_s: int = 900
    seed: int = 1
    sign: bool = True
    attend: float = 0.9
    forget_tap: float = 0.03
    forget_confirm: float = 0.05
    door_held: float = 0.1
    injected: float = 0.12  # share of lessons with one injection
    no_lesson_per_center: int = 1
    clock_bridge: float = 0.5  # reboots that start with a wrong unsynced clock, then sync
    timezone: str = "Asia/Almaty"
    extra_children: int = 0  # one more child in each of the first N groups
    # Devices whose kernel never reports NTP sync (their clock is right to within
    # ``unsynced_drift_ms``); they upload like the agent, each record ``upload_lag_ms``
    # after it is made, so their receipts bracket every record tightly.
    unsynced: float = 0.0
    unsynced_drift_ms: int = 20_000
    upload_lag_ms: int = 1500
    prefix: str = "C"  # center ids are PREFIX001, ...; children K<PREFIX>00001, ...


@dataclass(slots=True)
class Child:
    child_id: str
    name: str
    group_id: str
    center_id: str
    badges: tuple[str, ...]


@dataclass(slots=True)
class TrueRecord:
    """What the generator knows about a record: its true time and whether it survives.

    ``anchor_ms`` is when the portal signed the receipt the device held when it
    made the record, ``covered_ms`` when the portal first acknowledged it (both
    simulated times the generator chose; None before the first receipt / never).
    """

    seq: int
    type: str
    true_ms: int
    claimed_ms: int
    forged_clock: bool
    data: Mapping[str, Any]
    synced: bool = True
    boot: str = ""
    anchor_ms: int | None = None
    covered_ms: int | None = None
    kept: bool = True
    # Set by the labeller: the time the rules see, and whether the portal can trust it.
    rule_ms: int = 0
    trusted: bool = True
    proven: bool = True  # both receipts within the proof bracket of rule_ms


@dataclass(slots=True)
class Device:
    device_id: str
    center_id: str
    key: Ed25519PrivateKey
    never_synced: bool = False
    drift_ms: int = 0
    truth: list[TrueRecord] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)  # as uploaded, in seq order
    holes: list[tuple[int, int]] = field(default_factory=list)


class Uplink(Protocol):
    """Where devices upload: the in-memory :class:`LocalPortal` or the real ingest."""

    def enroll(self, center_id: str, key: Ed25519PrivateKey) -> str:
        """Register a device of ``center_id``; return its device id."""

    def upload(self, device: Device, records: list[dict[str, Any]], now_ms: int) -> str:
        """Store the records; return the new receipt's hash."""

    def declare_gap(self, device: Device, record: dict[str, Any], now_ms: int) -> str:
        """Record the hole named by a signed ``gap`` record; return the receipt's hash."""


class LocalPortal:
    """An in-memory stand-in for the portal: receipts by hash, covering times, events."""

    def __init__(self, seed: int = 0, sign: bool = True) -> None:
        self.key = _key(f"portal-{seed}")
        self.sign = sign
        self.receipt_ms: dict[str, int] = {}
        self.receipts: dict[str, dict[str, Any]] = {}  # by hash, as signed (sig "" unsigned)
        self.covered: dict[str, dict[int, int]] = defaultdict(dict)
        self.events: list[IntegrityEvent] = []
        self.heads: dict[str, tuple[int, str]] = {}

    def _receipt(self, device: str, seq: int, record_hash: str, now_ms: int) -> str:
        if self.sign:
            receipt = build_receipt(
                self.key, device=device, seq=seq, record_hash=record_hash, server_ms=now_ms
            )
        else:
            receipt = {
                "v": 1,
                "device": device,
                "seq": seq,
                "record_hash": record_hash,
                "server_ms": now_ms,
            }
            receipt["hash"] = seal_digest(receipt, checked=True)[1]
            receipt["sig"] = ""
        digest = str(receipt["hash"])
        self.receipt_ms[digest] = now_ms
        self.receipts[digest] = receipt
        return digest

    def enroll(self, center_id: str, key: Ed25519PrivateKey) -> str:
        return f"dev-{center_id}"

    def upload(self, device: Device, records: list[dict[str, Any]], now_ms: int) -> str:
        covered = self.covered[device.device_id]
        for r in records:
            covered.setdefault(r["seq"], now_ms)
        if records:
            self.heads[device.device_id] = (records[-1]["seq"], records[-1]["hash"])
        seq, head = self.heads.get(device.device_id, (0, ZERO_HASH))
        return self._receipt(device.device_id, seq, head, now_ms)

    def declare_gap(self, device: Device, record: dict[str, Any], now_ms: int) -> str:
        d = record["data"]
        self.events.append(
            IntegrityEvent(
                device.device_id, "gap", d["first_seq"], d["last_seq"], now_ms, d["reason"]
            )
        )
        self.heads[device.device_id] = (d["last_seq"], d["last_hash"])
        return self._receipt(device.device_id, d["last_seq"], d["last_hash"], now_ms)

    def log(self, device: Device) -> DeviceLog:
        return DeviceLog.from_records(
            device.device_id,
            device.center_id,
            device.records,
            self.receipt_ms,
            self.covered[device.device_id],
        )


@dataclass(slots=True)
class City:
    config: CityConfig
    zone: ZoneInfo
    centers: list[str]
    schedule: list[ScheduleEntry]
    children: list[Child]
    confirmations: list[Confirmation]
    devices: list[Device]
    lessons: list[Lesson]
    injections: dict[tuple[str, date], str]  # (group, date) -> kind
    fraud_rows: set[tuple[str, str, date]]  # rows where someone claimed an absent child
    tapped_rows: set[tuple[str, str, date]]  # present and tapped, lesson untouched
    # What honest behaviour the run produced (cluster sizes, short gaps, held doors,
    # forgotten taps and confirmations, clocks set wrong): the tests check its shape.
    stats: Counter[str] = field(default_factory=Counter)

    @property
    def last(self) -> date:
        return self.config.first + timedelta(days=self.config.days - 1)

    def members(self) -> list[Member]:
        return [
            Member(c.child_id, c.group_id, c.center_id, frozenset(c.badges), c.name)
            for c in self.children
        ]

    def record_count(self) -> int:
        return sum(len(d.records) for d in self.devices)

    # CSV files as an operator would export them (``;`` and a BOM, like Excel in ru-RU).
    def roster_csv(self) -> bytes:
        lines = ["child_id;badge_uid;center_id;group_id;child_name"]
        for c in self.children:
            for uid in c.badges:
                shown = ":".join(uid[i : i + 2] for i in range(0, len(uid), 2)).lower()
                lines.append(f"{c.child_id};{shown};{c.center_id};{c.group_id};{c.name}")
        return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")

    def schedule_csv(self) -> bytes:
        lines = ["group_id,center_id,weekday,start,end,price_kzt"]
        lines += [
            f"{e.group_id},{e.center_id},{e.weekday},{e.start:%H:%M},{e.end:%H:%M},{e.price_kzt}"
            for e in self.schedule
        ]
        return ("\n".join(lines) + "\n").encode("utf-8")

    def confirmations_csv(self) -> bytes:
        lines = ["child_id,group_id,date,confirmed_at,signer"]
        lines += [
            f"{c.child_id},{c.group_id},{c.date.isoformat()},{c.confirmed_at},{c.signer}"
            for c in self.confirmations
        ]
        return ("\n".join(lines) + "\n").encode("utf-8")


def _key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def _uid(rng: random.Random) -> str:
    size = rng.choice((4, 7, 7))
    return "".join(f"{rng.randrange(256):02X}" for _ in range(size))


@dataclass(slots=True)
class _Action:
    true_ms: int
    order: int
    type: str
    data: dict[str, Any]
    row: tuple[str, str, date] | None = None  # an honest arrival tap of this row


@dataclass(slots=True)
class _Segment:
    """A stretch with power on: one boot."""

    start: int
    end: int
    offset_ms: int = 0
    sync_ms: int | None = None  # clock wrong and unsynced before this (None: always synced)
    forged: bool = False  # clock set by the club and never synced


def generate(config: CityConfig, uplink: Uplink | None = None) -> tuple[City, Uplink]:
    """Build a city and run its devices through ``uplink`` (a :class:`LocalPortal` by default)."""
    rng = random.Random(config.seed)
    zone = ZoneInfo(config.timezone)
    link: Uplink = uplink if uplink is not None else LocalPortal(config.seed, config.sign)
    last = config.first + timedelta(days=config.days - 1)
    centers = [f"{config.prefix}{n:03d}" for n in range(1, config.centers + 1)]
    kid = "K" if config.prefix == "C" else f"K{config.prefix}"
    schedule: list[ScheduleEntry] = []
    children: list[Child] = []
    serial = group_no = 0
    for center in centers:
        for k in range(config.groups_per_center):
            group = f"{center}-G{k + 1}"
            slot = k % 4
            start = time(14 + (slot * 105) // 60, (slot * 105) % 60)
            end_min = start.hour * 60 + start.minute + 90
            end = time(end_min // 60, end_min % 60)
            price = rng.choice((2000, 2500, 3000, 3500, 4000, 5000))
            days = (1, 3, 5) if k % 2 == 0 else (2, 4)
            schedule += [ScheduleEntry(group, center, d, start, end, price) for d in days]
            group_no += 1
            extra = 1 if group_no <= config.extra_children else 0
            for _ in range(config.children_per_group + extra):
                serial += 1
                badges = (_uid(rng),) if rng.random() > 0.05 else (_uid(rng), _uid(rng))
                name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
                children.append(Child(f"{kid}{serial:05d}", name, group, center, badges))
    all_lessons = lessons(schedule, config.first, last, zone)
    city = City(config, zone, centers, schedule, children, [], [], all_lessons, {}, set(), set())
    by_group: dict[str, list[Child]] = defaultdict(list)
    for c in children:
        by_group[c.group_id].append(c)
    by_center: dict[str, list[Lesson]] = defaultdict(list)
    for lesson in all_lessons:
        by_center[lesson.center_id].append(lesson)
    for center in centers:
        _center(city, rng, center, by_center[center], by_group, link)
    return city, link


def _center(
    city: City,
    rng: random.Random,
    center: str,
    center_lessons: list[Lesson],
    by_group: Mapping[str, list[Child]],
    link: Uplink,
) -> None:
    cfg = city.config
    key = _key(f"device-{cfg.seed}-{center}")
    device = Device(link.enroll(center, key), center, key)
    if rng.random() < cfg.unsynced:
        device.never_synced = True
        device.drift_ms = rng.randint(-cfg.unsynced_drift_ms, cfg.unsynced_drift_ms)
    city.devices.append(device)
    begin = local_ms(cfg.first, time(0), city.zone) - 60 * MIN
    finish = local_ms(city.last + timedelta(days=1), time(0), city.zone)
    actions: list[_Action] = []
    off: list[tuple[int, int]] = []
    forged: list[tuple[int, int, int]] = []
    holes: list[tuple[int, int, int]] = []  # (from, to, at): records to delete, and when
    nights: set[date] = set()
    kinds = [*list(FRAUD_KINDS), "offline"]
    rng.shuffle(kinds)
    next_kind = 0
    for lesson in center_lessons:
        kids = by_group[lesson.group_id]
        kind = None
        if rng.random() < cfg.injected:
            kind = kinds[next_kind % len(kinds)]
            next_kind += 1
            if kind == "clock" and lesson.date in nights:
                kind = "ghost"
        if kind is not None:
            city.injections[(lesson.group_id, lesson.date)] = kind
        attending = {c.child_id for c in kids if rng.random() < cfg.attend}
        absent = [c for c in kids if c.child_id not in attending]
        fakes: list[Child] = []
        want = {"card_stack": rng.randint(5, 6), "ghost": rng.randint(1, 2)}.get(kind or "", 1)
        if kind in FRAUD_KINDS:
            while len(absent) < want:  # make room: the club claims children who stayed home
                pick = rng.choice([c for c in kids if c.child_id in attending])
                attending.discard(pick.child_id)
                absent.append(pick)
            fakes = rng.sample(absent, want)
        start, end = lesson.start_ms, lesson.end_ms
        # Honest arrivals in clusters behind one door opening; departures after the end.
        held = rng.random() < cfg.door_held
        arrivals = [c for c in kids if c.child_id in attending]
        rng.shuffle(arrivals)
        tapped = [c for c in arrivals if rng.random() >= cfg.forget_tap]
        forgot = {c.child_id for c in arrivals} - {c.child_id for c in tapped}
        if held:
            actions.append(_door(start - 26 * MIN, "open"))
            actions.append(_door(start + 8 * MIN, "closed"))
            city.stats["doors_held"] += 1
        city.stats["lessons"] += 1
        city.stats["forgot_tap"] += len(forgot)
        city.stats["arrivals"] += len(arrivals)
        _clusters(
            rng,
            actions,
            tapped,
            start - 25 * MIN,
            start + 4 * MIN,
            not held,
            None if kind else lesson,
            city.stats,
        )
        _clusters(rng, actions, tapped, end + MIN, end + 8 * MIN, True, None, city.stats)
        # Confirmations: attending children (unless the parent forgot) and the fakes.
        for c in kids:
            claimed = c in fakes
            if (c.child_id in attending and rng.random() >= cfg.forget_confirm) or claimed:
                city.confirmations.append(_confirm(rng, c, lesson, city.zone))
            elif c.child_id in attending:
                city.stats["forgot_confirm"] += 1
            if claimed:
                city.fraud_rows.add((c.child_id, lesson.group_id, lesson.date))
        t = start + 31 * MIN
        if kind == "card_stack":
            for c in fakes:
                actions.append(_badge(t, c.badges[0]))
                t += rng.randint(300, 1200)
        elif kind == "no_door":
            actions.append(_badge(t + MIN, fakes[0].badges[0]))
        elif kind == "simulated":
            actions.append(_door(t, "open"))
            for i, c in enumerate(fakes):
                actions.append(_badge(t + 5000 + i * 3000, c.badges[0], "desk", "simulated"))
            actions.append(_door(t + 30_000, "closed"))
        elif kind == "chain_hole":
            actions.append(
                _Action(
                    start + 26 * MIN,
                    1,
                    "reader",
                    {"reader": "main", "state": "fault", "detail": "timeout"},
                )
            )
            holes.append((start + 24 * MIN, start + 29 * MIN, start + 30 * MIN))
            actions.append(_door(t, "open"))
            for i, c in enumerate(fakes):
                actions.append(_badge(t + 4000 + i * 4000, c.badges[0]))
            actions.append(_door(t + 20_000, "closed"))
        elif kind == "clock":
            night = lesson.date + timedelta(days=1)
            nights.add(lesson.date)
            at = local_ms(night, time(2, 7), city.zone)
            claim = start + 20 * MIN
            forged.append((at, at + 40 * MIN, claim - (at + 10 * MIN)))
            for i, c in enumerate(fakes):
                actions.append(_badge(at + 10 * MIN + i * 20_000, c.badges[0]))
        elif kind == "offline":
            off.append((start - 35 * MIN, end + 15 * MIN))
    # No-lesson confirmations: a date when the group does not meet.
    groups = sorted({lesson.group_id for lesson in center_lessons})
    met = {(lesson.group_id, lesson.date) for lesson in center_lessons}
    for _ in range(cfg.no_lesson_per_center if groups else 0):
        group = rng.choice(groups)
        for _try in range(20):
            day = cfg.first + timedelta(days=rng.randrange(cfg.days))
            if (group, day) not in met:
                c = rng.choice(by_group[group])
                fake = Lesson(group, center, day, local_ms(day, time(15), city.zone), 0, 0)
                city.confirmations.append(_confirm(rng, c, fake, city.zone))
                city.fraud_rows.add((c.child_id, group, day))
                city.injections[(group, day)] = "no_lesson"
                break
    segments = _segments(rng, cfg, begin, finish, off, forged, device.never_synced)
    city.stats["boots"] += len(segments)
    city.stats["boots_clock_wrong_then_synced"] += sum(s.sync_ms is not None for s in segments)
    city.stats["boots_clock_forged"] += sum(s.forged for s in segments)
    city.stats["devices_never_synced"] += device.never_synced
    recorded = _run(cfg, rng, device, actions, segments, holes, link)
    city.tapped_rows.update(recorded)


def _door(at: int, state: str) -> _Action:
    return _Action(at, 0, "door", {"sensor": "front", "state": state})


def _badge(at: int, uid: str, reader: str = "main", driver: str = "mfrc522") -> _Action:
    return _Action(
        at, 1, "badge", {"reader": reader, "driver": driver, "uid": uid, "uid_len": len(uid) // 2}
    )


def _gap_ms(rng: random.Random) -> int:
    """Time between two taps in a cluster: about one in ten under 1.5 s."""
    if rng.random() < 0.1:
        return rng.randint(500, 1499)
    return 1500 + min(int(rng.expovariate(1 / 4000)), 15_000)


def _clusters(
    rng: random.Random,
    actions: list[_Action],
    kids: list[Child],
    lo: int,
    hi: int,
    doors: bool,
    lesson: Lesson | None,
    stats: Counter[str],
) -> None:
    i = 0
    while i < len(kids):
        size = rng.randint(1, 6)
        stats[f"cluster_{len(kids[i : i + size])}"] += 1
        t = rng.randint(lo, hi)
        if doors:
            actions.append(_door(t, "open"))
        t += rng.randint(1000, 4000)
        for k, c in enumerate(kids[i : i + size]):
            if k:
                gap = _gap_ms(rng)
                t += gap
                stats["gaps"] += 1
                stats["gaps_under_1500"] += gap < 1500
            action = _badge(t, rng.choice(c.badges))
            if lesson is not None:
                action.row = (c.child_id, lesson.group_id, lesson.date)
            actions.append(action)
        if doors:
            actions.append(_door(t + rng.randint(2000, 8000), "closed"))
        i += size


def _confirm(rng: random.Random, c: Child, lesson: Lesson, zone: ZoneInfo) -> Confirmation:
    at = lesson.date + timedelta(days=rng.choice((0, 0, 1)))
    stamp = f"{at.isoformat()} {rng.randint(19, 22):02d}:{rng.randrange(60):02d}"
    return Confirmation(c.child_id, lesson.group_id, lesson.date, stamp, f"parent-{c.child_id}")


def _segments(
    rng: random.Random,
    cfg: CityConfig,
    begin: int,
    finish: int,
    off: list[tuple[int, int]],
    forged: list[tuple[int, int, int]],
    never_synced: bool = False,
) -> list[_Segment]:
    cuts = sorted(
        [(a, b, None) for a, b in off] + [(a - MIN, b + MIN, o) for a, b, o in forged],
        key=lambda x: x[0],
    )
    out: list[_Segment] = []
    t = begin
    for a, b, offset in cuts:
        if a > t:
            out.append(_Segment(t, a))
        if offset is not None:
            out.append(_Segment(a + MIN, b - MIN, offset, None, True))
        t = max(t, b)
    out.append(_Segment(t, finish))
    for seg in out[1:] if not never_synced else ():
        if not seg.forged and seg.end - seg.start > 30 * MIN and rng.random() < cfg.clock_bridge:
            seg.offset_ms = -rng.randint(1, 3) * 86_400_000 - rng.randint(0, 3_600_000)
            seg.sync_ms = seg.start + rng.randint(3, 12) * MIN
    return out


def _run(
    cfg: CityConfig,
    rng: random.Random,
    device: Device,
    actions: list[_Action],
    segments: list[_Segment],
    holes: list[tuple[int, int, int]],
    link: Uplink,
) -> set[tuple[str, str, date]]:
    """Power each segment, make records, upload on schedule, delete and declare holes.

    Returns the rows whose honest arrival tap was recorded.
    """
    recorded: set[tuple[str, str, date]] = set()
    step_hb, step_up = cfg.heartbeat_s * 1000, cfg.upload_s * 1000
    actions.sort(key=lambda a: (a.true_ms, a.order))
    seq, prev, anchor = 0, ZERO_HASH, ""
    anchor_at: int | None = None
    pending: list[tuple[dict[str, Any], TrueRecord]] = []
    hole_queue = sorted(holes)
    k = 0
    never = 2**62
    lag = cfg.upload_lag_ms

    def make(seg: _Segment, boot: str, at: int, kind: str, data: dict[str, Any]) -> None:
        nonlocal seq, prev
        seq += 1
        wrong = seg.forged or (seg.sync_ms is not None and at < seg.sync_ms)
        claimed = at + seg.offset_ms if wrong else at + device.drift_ms
        synced = not wrong and not device.never_synced
        body: dict[str, Any] = {
            "v": 1,
            "device": device.device_id,
            "seq": seq,
            "prev": prev,
            "type": kind,
            "wall_ms": claimed,
            "synced": synced,
            "boot": boot,
            "mono_ns": (at - seg.start + 4000) * 1_000_000,
            "anchor": anchor,
            "data": data,
        }
        if cfg.sign:
            record = build_record(device.key, **{k: v for k, v in body.items() if k != "v"})
        else:
            record = dict(body)
            record["hash"] = seal_digest(body, checked=True)[1]
            record["sig"] = ""
        prev = record["hash"]
        truth = TrueRecord(seq, kind, at, claimed, seg.forged, data, synced, boot, anchor_at)
        device.truth.append(truth)
        pending.append((record, truth))

    def send(records: list[tuple[dict[str, Any], TrueRecord]], now: int) -> None:
        nonlocal anchor, anchor_at
        device.records += [r for r, _ in records]
        anchor, anchor_at = link.upload(device, [r for r, _ in records], now), now
        for _, t in records:
            t.covered_ms = now

    def eager_due(seg: _Segment) -> int:
        """When a device that uploads like the agent sends what is pending."""
        if not device.never_synced or not pending:
            return never
        due = max(pending[0][1].true_ms, seg.start) + lag
        # Keep records a scheduled hole will delete until the hole is declared.
        if any(lo <= due <= at + lag for lo, _, at in hole_queue):
            return never
        return due

    def upload(now: int) -> None:
        nonlocal anchor, anchor_at
        batch = pending[:]
        pending.clear()
        while hole_queue and hole_queue[0][2] <= now:
            lo, hi, _ = hole_queue.pop(0)
            lost = [(r, t) for r, t in batch if lo <= t.true_ms <= hi]
            if not lost:
                continue
            first_seq, last_seq = lost[0][1].seq, lost[-1][1].seq
            before = [(r, t) for r, t in batch if t.seq < first_seq]
            after = [(r, t) for r, t in batch if t.seq > last_seq]
            if before:
                send(before, now)
            for _, t in lost:
                t.kept = False
            gap = {
                "first_seq": first_seq,
                "last_seq": last_seq,
                "last_hash": lost[-1][0]["hash"],
                "reason": "quarantined",
            }
            make(current, boot_id, now, "gap", gap)
            gap_record, _ = pending.pop()
            anchor, anchor_at = link.declare_gap(device, gap_record, now), now
            device.holes.append((first_seq, last_seq))
            batch = [*after, (gap_record, device.truth[-1])]
        if batch:
            send(batch, now)

    for n, current in enumerate(segments):
        boot_id = hashlib.sha256(f"{device.device_id}-{n}-{cfg.seed}".encode()).hexdigest()[:32]
        boot_id = "-".join(
            (boot_id[:8], boot_id[8:12], boot_id[12:16], boot_id[16:20], boot_id[20:])
        )
        make(
            current,
            boot_id,
            current.start,
            "boot",
            {
                "agent_version": "0.1.0",
                "config_sha256": "0" * 64,
                "drivers": ["mfrc522"],
                "readers": ["main"],
                "doors": ["front"],
            },
        )
        hb = (current.start // step_hb + 1) * step_hb
        up = (current.start // step_up + 1) * step_up
        while k < len(actions) and actions[k].true_ms < current.start:
            k += 1  # power was off: nothing observed
        while True:
            due = eager_due(current)
            nxt = min(hb, up, due, actions[k].true_ms if k < len(actions) else current.end)
            if nxt >= current.end:
                break
            if k < len(actions) and actions[k].true_ms == nxt:
                make(current, boot_id, nxt, actions[k].type, actions[k].data)
                row = actions[k].row
                if row is not None:
                    recorded.add(row)
                k += 1
            elif hb == nxt:
                make(
                    current,
                    boot_id,
                    hb,
                    "heartbeat",
                    {
                        "pending": len(pending),
                        "readers": {"main": "ok"},
                        "uptime_s": (hb - current.start) // 1000,
                    },
                )
                hb += step_hb
            elif due == nxt:
                upload(due)
            else:
                upload(up + 1000)
                up += step_up
        while k < len(actions) and actions[k].true_ms < current.end:
            k += 1
    if pending:
        upload(segments[-1].end + 1000)
    return recorded


# ---------------------------------------------------------------- labels (the truth)

_ORDER = (
    "card_burst",
    "no_door_passage",
    "time_untrusted",
    "simulated_reader",
    "chain_integrity",
    "no_lesson_scheduled",
)
Labels = dict[tuple[str, str, date], tuple[str, tuple[str, ...]]]


def _judge_times(kept: list[TrueRecord], s: ReconcileSettings) -> None:
    """Which time the rules see for each record, whether it is trusted and proven.

    A record with a synced reference (itself, or a synced record of its boot) is
    placed at its true time: honest boots are placed exactly, and forged boots
    never sync. Without one, the rules see the claimed clock. Either way it is
    trusted unless that time lies outside the receipts' bounds (± tolerance), and
    proven when both receipts lie within the proof bracket of it (decision 0820).
    """
    synced_boots = {t.boot for t in kept if t.synced}
    tol, bracket = s.time_tolerance_ms, s.proof_bracket_ms
    for t in kept:
        lo, hi = t.anchor_ms, t.covered_ms
        t.rule_ms = t.true_ms if t.synced or t.boot in synced_boots else t.claimed_ms
        c = t.rule_ms
        t.trusted = (lo is None or c >= lo - tol) and (hi is None or c <= hi + tol)
        t.proven = (
            t.trusted
            and lo is not None
            and hi is not None
            and lo >= c - bracket
            and hi <= c + bracket
        )


class _Truth:
    """One device's surviving records, indexed for the rules (from the generator's truth)."""

    def __init__(self, device: Device, s: ReconcileSettings) -> None:
        self.kept = [t for t in device.truth if t.kept]
        _judge_times(self.kept, s)
        self.by_seq = {t.seq: t for t in self.kept}
        self.moments = sorted(t.rule_ms for t in self.kept)
        self.badges = sorted((t for t in self.kept if t.type == "badge"), key=lambda t: t.rule_ms)
        self.badge_times = [t.rule_ms for t in self.badges]
        self.readers: dict[str, list[TrueRecord]] = defaultdict(list)
        for t in self.badges:
            self.readers[t.data["reader"]].append(t)
        self.place = {t.seq: i for run in self.readers.values() for i, t in enumerate(run)}
        self.doors: dict[str, list[TrueRecord]] = defaultdict(list)
        for t in sorted(
            (t for t in self.kept if t.type == "door"), key=lambda t: (t.rule_ms, t.seq)
        ):
            self.doors[t.data["sensor"]].append(t)
        self.boots = [t for t in self.kept if t.type == "boot"]
        self.holes = []
        for first, last_ in device.holes:
            a, b = self.by_seq.get(first - 1), self.by_seq.get(last_ + 1)
            if a is not None and b is not None:
                self.holes.append((min(a.rule_ms, b.rule_ms), max(a.rule_ms, b.rule_ms)))

    def reasons(self, t: TrueRecord, lo: int, hi: int, s: ReconcileSettings) -> set[str]:
        out: set[str] = set()
        run = self.readers[t.data["reader"]]
        a = b = self.place[t.seq]
        while a > 0 and run[a].rule_ms - run[a - 1].rule_ms < s.burst_gap_ms:
            a -= 1
        while b + 1 < len(run) and run[b + 1].rule_ms - run[b].rule_ms < s.burst_gap_ms:
            b += 1
        if len({x.data["uid"] for x in run[a : b + 1]}) >= s.burst_min_uids:
            out.add("card_burst")
        boots = [x for x in self.boots if x.seq <= t.seq]
        listed = boots[-1].data["doors"] if boots else []
        if listed and not any(
            self._open(d, t.rule_ms - s.door_window_ms, t.rule_ms + s.door_window_ms)
            for d in listed
        ):
            out.add("no_door_passage")
        if not t.trusted:
            out.add("time_untrusted")
        if t.data["driver"] == "simulated":
            out.add("simulated_reader")
        if any(a_ <= hi and b_ >= lo for a_, b_ in self.holes):
            out.add("chain_integrity")
        return out

    def _open(self, door: str, lo: int, hi: int) -> bool:
        state = "closed"
        for x in self.doors.get(door, ()):
            if x.rule_ms <= lo:
                state = x.data["state"]
            elif x.rule_ms <= hi and x.data["state"] == "open":
                return True
        return state == "open"


def label(city: City, settings: ReconcileSettings) -> Labels:
    """Status and reasons of every row, by the rules applied to the true events."""
    import bisect

    out: Labels = {}
    margin = settings.margin_s * 1000
    confirmed: dict[tuple[str, date], set[str]] = defaultdict(set)
    for c in city.confirmations:
        confirmed[(c.group_id, c.date)].add(c.child_id)
    owner: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for kid in city.children:
        for uid in kid.badges:
            owner[kid.group_id][uid].add(kid.child_id)
    truth = {d.center_id: _Truth(d, settings) for d in city.devices}
    held: set[tuple[str, date]] = set()
    for lesson in city.lessons:
        held.add((lesson.group_id, lesson.date))
        lo, hi = lesson.start_ms - margin, lesson.end_ms
        dev = truth.get(lesson.center_id)
        moments = [lo, hi]
        present: dict[str, list[set[str]]] = defaultdict(list)
        proven: set[str] = set()  # children with a clean read whose time is proven
        if dev is not None:
            i, j = bisect.bisect_left(dev.moments, lo), bisect.bisect_right(dev.moments, hi)
            moments = [lo, *dev.moments[i:j], hi]
            i, j = bisect.bisect_left(dev.badge_times, lo), bisect.bisect_right(dev.badge_times, hi)
            for t in dev.badges[i:j]:
                for child in owner[lesson.group_id].get(t.data["uid"], ()):
                    why = dev.reasons(t, lo, hi, settings)
                    present[child].append(why)
                    if not why and t.proven:
                        proven.add(child)
        offline = any(b - a > settings.offline_ms for a, b in itertools.pairwise(moments))
        yes = confirmed.get((lesson.group_id, lesson.date), set())
        for child in set(present) | yes:
            reads = present.get(child, [])
            clean = any(not r for r in reads)
            reasons = () if clean else tuple(x for x in _ORDER if any(x in r for r in reads))
            if child not in yes:
                status = "present_not_confirmed"
            elif reads:
                if not clean:
                    status = "suspect"
                else:
                    status = "verified" if child in proven else "present_unproven"
            else:
                status = "confirmed_device_offline" if offline else "confirmed_without_presence"
            out[(child, lesson.group_id, lesson.date)] = (status, reasons)
    for (group, day), kids in confirmed.items():
        if (group, day) not in held:
            for child in kids:
                out[(child, group, day)] = ("confirmed_without_presence", ("no_lesson_scheduled",))
    return out
