"""A synthetic city: honest behaviour, every attack class as labelled fraud, and ground truth.

The city has centers (one device each, reader ``main`` and on some devices a
second reader ``side``, door ``front``), groups with weekly schedules, children
with badges in families, and parents' confirmations. Every parameter below is
an assumption until pilot data exists (docs/reconciliation.md, "The generated
city").

Honest behaviour (label ``honest``):

- arrivals in [start - 30 min, start + 10 min] in clusters of 1 (60 %), 2
  (25 %), 3 (10 %), 4 (4 %) or 5-6 (1 %) children, siblings side by side; taps
  1-4 s apart (about one gap in ten under 1.5 s), on either reader of a
  two-reader device; each cluster opens the door itself (``open`` 1-3 s before
  its first tap, ``closed`` 5-15 s after its last);
- warm days (about 15 % of a center's lesson days): the door propped open 20-40
  min before the start until 10-30 min after it, no door event of the taps;
- departures: about 70 % of the children tap out within 10 min after the end,
  in clusters, with a door opening;
- network outages, short (1-10 min, a few per device-week) and long (2-48 h,
  rare), half of them starting with a lost answer (the portal stored the batch
  and signed a receipt the device never got, so it keeps its old anchor and
  sends the batch again); power cuts (rare reboots, some with a clock wrong
  until NTP syncs); a device's first boot 2-3 months before the period;
- devices without NTP (about 10 % in the benchmark): ``synced`` false for
  ever, clock right within a minute;
- children in two clubs (another center, lessons at least 30 min apart, the
  same day possible), children staying for two back-to-back lessons of one
  center after one tap, make-up lessons imported days before their date,
  confirmations hours to 5 days after the lesson, families of 1-3 children
  (about 2 % of 4) with one signer each; some children forget to tap, some
  parents to confirm.

Attacks (label = the class, :data:`ATTACKS`; a fraudulent row is one where the
club claims a child who was absent, or a lesson or price that was not held):
``slow_stack``, ``split_stack``, ``runs_of_four``, ``no_door_config``,
``door_stuck_open``, ``never_rebooted``, ``backdated_online``, ``withheld``,
``renamed_simulator``, ``double_booking``, ``late_schedule``, ``long_lesson``,
``early_confirmation``, ``shared_signer``, ``cloned_device``, ``unplugged``,
``patient``, and the first release's ``ghost``, ``card_stack``, ``no_door``,
``clock``, ``simulated``, ``chain_hole``, ``no_lesson``. Lesson classes are
dealt round the city in a fixed cycle (so a small city still has each), day
classes (a device misconfigured, withheld or cloned for a day) likewise, a few
centers are ``patient`` for the whole period, and double bookings pair a child
of one center with an overlapping lesson of another.

Ground truth: :attr:`City.truth` labels every (child, group, date) row the
generator makes (:class:`RowTruth`: the label, whether the child was there,
tapped, was confirmed, and features such as ``propped``, ``back_to_back``,
``late_confirmation``, ``collateral``: an honest child's row in a lesson or
day an attack touched, whose evidence the attack legitimately spoils).

Devices sign records with real Ed25519 keys (:func:`agent.protocol.build_record`)
and upload them through an :class:`Uplink` every ``upload_s`` of simulated time,
putting the newest receipt into ``anchor``: :class:`LocalPortal` stands in for
the portal in memory (it also records each upload's ``address``); the database
path feeds the real ingest instead. What the portal imports and when is
:meth:`City.import_plan`: the schedule and roster before the period, make-ups
before their dates, late changes after theirs, confirmations after the period.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol import ZERO_HASH, build_receipt, build_record, seal_digest
from agent.protocol.canonical import boot_epoch
from portal.reconcile.lessons import Lesson, ScheduleEntry, lessons, local_ms
from portal.reconcile.model import (
    Confirmation,
    DeviceLog,
    IntegrityEvent,
    Member,
)
from portal.synthetic.sun import SunCards, sun_uid

logger = logging.getLogger(__name__)

HONEST = "honest"
# The attack classes of the honest/attack model (the keys of the benchmark's attack_recall).
ATTACKS = (
    "slow_stack",
    "split_stack",
    "runs_of_four",
    "no_door_config",
    "door_stuck_open",
    "never_rebooted",
    "backdated_online",
    "withheld",
    "renamed_simulator",
    "double_booking",
    "late_schedule",
    "long_lesson",
    "early_confirmation",
    "shared_signer",
    "cloned_device",
    "unplugged",
    "patient",
)
# The first release's classes, still attacks: confirmations without a tap, a fast stack
# at one reader, a tap with the door shut after a reboot, a forged clock, the test
# driver, records deleted, a confirmation on a day without a lesson.
FIRST_ATTACKS = ("ghost", "card_stack", "no_door", "clock", "simulated", "chain_hole", "no_lesson")
FRAUD_KINDS = (*ATTACKS, *FIRST_ATTACKS)
# Dealt lesson by lesson, in this order round the city (never_rebooted and no_door are one
# deal: the label says whether the device rebooted in the period before the tap).
LESSON_KINDS = (
    "chain_hole",
    "slow_stack",
    "ghost",
    "split_stack",
    "backdated_online",
    "card_stack",
    "never_rebooted",
    "renamed_simulator",
    "early_confirmation",
    "clock",
    "runs_of_four",
    "shared_signer",
    "unplugged",
    "simulated",
    "long_lesson",
    "late_schedule",
)
DAY_KINDS = ("no_door_config", "door_stuck_open", "withheld", "cloned_device")
# Lessons and days whose honest rows an attack spoils on purpose (``collateral``).
_TAINT_LESSON = frozenset(
    {"slow_stack", "split_stack", "runs_of_four", "card_stack", "backdated_online",
     "long_lesson", "shared_signer"}
)  # fmt: skip
_TAINT_DAY = frozenset({*DAY_KINDS, "chain_hole", "unplugged"})
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR

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
    warm_days: float = 0.15  # lesson days with the door propped open
    depart_tap: float = 0.7
    injected: float = 0.12  # share of lessons with one lesson attack
    day_injected: float = 0.04  # share of center-days with one day attack
    patient_centers: float = 0.05  # at least one when there are 5 centers or more
    double_bookings: float = 0.3  # per center, on average
    no_lesson_per_center: int = 1
    clock_bridge: float = 0.5  # reboots that start with a wrong unsynced clock, then sync
    two_readers: float = 0.3
    two_clubs: float = 0.04  # children also in a group of another center
    back_to_back: float = 0.05  # children of a first-slot group also in the next slot's
    makeups: float = 0.25  # groups with one make-up lesson (a Saturday) in the period
    short_outages_per_week: float = 3.0
    long_outages_per_month: float = 0.15
    power_cuts_per_month: float = 0.5
    offline_lessons: float = 0.005  # lessons with a power cut over the whole lesson (honest)
    # The device's first boot 60-90 days before the period (not more: mono_ns must stay
    # under 2^53 ns, about 104 days, for the record format).
    install_days: int = 60
    timezone: str = "Asia/Almaty"
    extra_children: int = 0  # one more child in each of the first N groups
    # Devices whose kernel never reports NTP sync (their clock is right to within
    # ``unsynced_drift_ms``); they upload like the agent, each record ``upload_lag_ms``
    # after it is made, so their receipts bracket every record tightly.
    unsynced: float = 0.0
    unsynced_drift_ms: int = 60_000
    upload_lag_ms: int = 1500
    prefix: str = "C"  # center ids are PREFIX001, ...; children K<PREFIX>00001, ...
    # The first ``sun_centers`` centers issue NTAG 424 DNA cards (7-byte UIDs) whose
    # every read carries a SUN message under keys derived from ``sun_master`` (the
    # portal's card master key): :mod:`portal.synthetic.sun`. 0: UID cards only.
    sun_centers: int = 0
    sun_master: bytes = field(default=b"", repr=False)

    def center_ids(self) -> list[str]:
        return [f"{self.prefix}{n:03d}" for n in range(1, self.centers + 1)]


# Almaty's districts; a synthetic center is in one of them, by its number.
DISTRICTS = (
    "Алатауский",
    "Алмалинский",
    "Ауэзовский",
    "Бостандыкский",
    "Жетысуский",
    "Медеуский",
    "Наурызбайский",
    "Турксибский",
)


def district_of(center_id: str) -> str:
    """The district of a synthetic center (its number round the districts)."""
    digits = "".join(ch for ch in center_id if ch.isdigit())
    return DISTRICTS[int(digits or 0) % len(DISTRICTS)]


@dataclass(slots=True)
class Child:
    child_id: str
    name: str
    group_id: str
    center_id: str
    badges: tuple[str, ...]
    family: str = ""
    # A second group: ("two_clubs" | "back_to_back" | "double_booking", group, center).
    extra: tuple[str, str, str] | None = None


@dataclass(slots=True)
class RowTruth:
    """What really happened in one (child, group, date) row."""

    label: str = HONEST  # HONEST or an attack class
    present: bool = False  # the child was at the lesson
    tapped: bool = False  # an arrival tap of the child in the lesson's window was recorded
    confirmed: bool = False
    features: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class ImportStep:
    """One file the portal imports, and when (simulated portal time)."""

    kind: str  # schedule, roster or confirmations
    data: bytes
    imported_ms: int
    note: str = ""  # base, makeup, late_schedule, long_lesson, double_booking
    allow_long: bool = False  # a lesson longer than lesson_max_min, admitted on purpose


@dataclass(slots=True)
class TrueRecord:
    """What the generator knows about a record: its true time and whether it survives."""

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
    author: str = ""  # "clone": made by a second device with a copy of the key


@dataclass(slots=True)
class Device:
    device_id: str
    center_id: str
    key: Ed25519PrivateKey
    never_synced: bool = False
    drift_ms: int = 0
    readers: tuple[str, ...] = ("main",)
    address: str = ""
    truth: list[TrueRecord] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)  # as stored, in seq order
    holes: list[tuple[int, int]] = field(default_factory=list)


class Uplink(Protocol):
    """Where devices upload: the in-memory :class:`LocalPortal` or the real ingest."""

    def enroll(self, center_id: str, key: Ed25519PrivateKey) -> str:
        """Register a device of ``center_id``; return its device id."""

    def upload(
        self, device: Device, records: list[dict[str, Any]], now_ms: int, address: str = ""
    ) -> str:
        """Store the records sent from ``address``; return the new receipt's hash."""

    def declare_gap(self, device: Device, record: dict[str, Any], now_ms: int) -> str:
        """Record the hole named by a signed ``gap`` record; return the receipt's hash."""


class LocalPortal:
    """An in-memory stand-in for the portal: receipts, covering times, events, addresses."""

    def __init__(self, seed: int = 0, sign: bool = True) -> None:
        self.key = _key(f"portal-{seed}")
        self.sign = sign
        self.receipt_ms: dict[str, int] = {}
        self.receipts: dict[str, dict[str, Any]] = {}  # by hash, as signed (sig "" unsigned)
        self.covered: dict[str, dict[int, int]] = defaultdict(dict)
        self.events: list[IntegrityEvent] = []
        self.heads: dict[str, tuple[int, str]] = {}
        # Per device: (server_ms, address, first_seq, last_seq) of every non-empty upload.
        self.addresses: dict[str, list[tuple[int, str, int, int]]] = defaultdict(list)

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

    def upload(
        self, device: Device, records: list[dict[str, Any]], now_ms: int, address: str = ""
    ) -> str:
        covered = self.covered[device.device_id]
        for r in records:
            covered.setdefault(r["seq"], now_ms)
        if records:
            head = self.heads.get(device.device_id, (0, ZERO_HASH))
            if records[-1]["seq"] > head[0]:
                self.heads[device.device_id] = (records[-1]["seq"], records[-1]["hash"])
            self.addresses[device.device_id].append(
                (now_ms, address, records[0]["seq"], records[-1]["seq"])
            )
        seq, head_hash = self.heads.get(device.device_id, (0, ZERO_HASH))
        return self._receipt(device.device_id, seq, head_hash, now_ms)

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
        log = DeviceLog.from_records(
            device.device_id,
            device.center_id,
            device.records,
            self.receipt_ms,
            self.covered[device.device_id],
        )
        log.uploads = upload_runs(self.addresses[device.device_id])
        return log


def upload_runs(uploads: list[tuple[int, str, int, int]]) -> list[tuple[int, int, str]]:
    """Uploads ``(server_ms, address, first_seq, last_seq)`` as the runs the ingest keeps:
    ``(first_ms, last_ms, address)`` per stretch from one address (no address: none)."""
    runs: list[tuple[int, int, str]] = []
    for at, address, _, _ in sorted(uploads):
        if not address:
            continue
        if runs and runs[-1][2] == address:
            runs[-1] = (runs[-1][0], at, address)
        else:
            runs.append((at, at, address))
    return runs


@dataclass(slots=True)
class City:
    config: CityConfig
    zone: ZoneInfo
    centers: list[str]
    schedule: list[ScheduleEntry]  # every entry, as the portal holds it after the last import
    children: list[Child]
    confirmations: list[Confirmation]
    devices: list[Device]
    lessons: list[Lesson]
    injections: dict[tuple[str, date], str]  # (group, date) -> class dealt to that lesson
    truth: dict[tuple[str, str, date], RowTruth] = field(default_factory=dict)
    # Schedule entries and when they were imported (base entries before the period).
    entry_imported: dict[ScheduleEntry, tuple[int, str]] = field(default_factory=dict)
    # A late change's entry -> the version the base import held before it (a price
    # raise ends the old row late: until then the old row stood, open-ended).
    base_versions: dict[ScheduleEntry, ScheduleEntry] = field(default_factory=dict)
    day_injections: dict[tuple[str, date], str] = field(default_factory=dict)
    patient_centers: set[str] = field(default_factory=set)
    # What honest behaviour the run produced (cluster sizes, short gaps, propped doors,
    # outages, ...): the tests check its shape.
    stats: Counter[str] = field(default_factory=Counter)
    sun: SunCards | None = None  # the SUN cards, when config.sun_centers issues some

    @property
    def last(self) -> date:
        return self.config.first + timedelta(days=self.config.days - 1)

    @property
    def fraud_rows(self) -> set[tuple[str, str, date]]:
        return {k for k, t in self.truth.items() if t.label != HONEST}

    @property
    def tapped_rows(self) -> set[tuple[str, str, date]]:
        """Honest rows of children who tapped in, in lessons no attack touched."""
        return {
            k
            for k, t in self.truth.items()
            if t.label == HONEST and t.tapped and "collateral" not in t.features
        }

    def members(self) -> list[Member]:
        out = []
        for c in self.children:
            out.append(Member(c.child_id, c.group_id, c.center_id, frozenset(c.badges), c.name))
            if c.extra is not None:
                _, group, center = c.extra
                out.append(Member(c.child_id, group, center, frozenset(c.badges), c.name))
        return out

    def record_count(self) -> int:
        return sum(len(d.records) for d in self.devices)

    # CSV files as an operator would export them (``;`` and a BOM, like Excel in ru-RU).
    def roster_csv(self) -> bytes:
        lines = ["child_id;badge_uid;center_id;group_id;child_name"]
        for m in self.members():
            for uid in sorted(m.badges):
                shown = ":".join(uid[i : i + 2] for i in range(0, len(uid), 2)).lower()
                lines.append(f"{m.child_id};{shown};{m.center_id};{m.group_id};{m.child_name}")
        return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")

    def schedule_csv(self, entries: list[ScheduleEntry] | None = None) -> bytes:
        """The schedule in one file (without the entries that need ``allow_long``)."""
        chosen = entries if entries is not None else self._plain_entries()
        lines = ["group_id,center_id,weekday,start,end,price_kzt,valid_from,valid_to"]
        lines += [
            f"{e.group_id},{e.center_id},{e.weekday},{e.start:%H:%M},{e.end:%H:%M},"
            f"{e.price_kzt},{e.valid_from or ''},{e.valid_to or ''}"
            for e in chosen
        ]
        return ("\n".join(lines) + "\n").encode("utf-8")

    def _plain_entries(self) -> list[ScheduleEntry]:
        return [e for e in self.schedule if self.entry_imported.get(e, (0, ""))[1] != "long"]

    def confirmations_csv(self) -> bytes:
        lines = ["child_id,group_id,date,confirmed_at,signer"]
        lines += [
            f"{c.child_id},{c.group_id},{c.date.isoformat()},{c.confirmed_at},{c.signer}"
            for c in self.confirmations
        ]
        return ("\n".join(lines) + "\n").encode("utf-8")

    def import_plan(self) -> list[ImportStep]:
        """The imports in the order and at the times the portal receives them.

        The honest schedule and the roster two weeks before the period; each make-up
        and long lesson days before its date; each late change days after its date;
        the confirmations six days after the period.
        """
        base = local_ms(self.config.first - timedelta(days=14), time(10), self.zone)
        later: dict[tuple[int, str], list[ScheduleEntry]] = defaultdict(list)
        early: list[ScheduleEntry] = []
        for e in self.schedule:
            at, note = self.entry_imported.get(e, (0, "base"))
            if note == "base":
                early.append(e)
            else:
                later[(at, note)].append(e)
                if e in self.base_versions:
                    early.append(self.base_versions[e])
        steps = [
            ImportStep("schedule", self.schedule_csv(early), base, "base"),
            ImportStep("roster", self.roster_csv(), base + 60_000, "base"),
        ]
        for (at, note), entries in sorted(later.items()):
            steps.append(
                ImportStep("schedule", self.schedule_csv(entries), at, note, note == "long")
            )
        end = local_ms(self.last + timedelta(days=6), time(10), self.zone)
        steps.append(ImportStep("confirmations", self.confirmations_csv(), end, "base"))
        return sorted(steps, key=lambda s: s.imported_ms)


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
    tag: str = ""  # "cluster": an honest cluster's door event (dropped while propped/stuck)
    claim_ms: int | None = None  # a forged wall clock (synced true) instead of the device's
    anchor: str | None = None  # None: the current receipt; "": none; "old": the claim's
    author: str = ""  # "clone": made and uploaded by a second device with the key


@dataclass(slots=True)
class _Segment:
    """A stretch with power on: one boot."""

    start: int
    end: int
    offset_ms: int = 0
    sync_ms: int | None = None  # clock wrong and unsynced before this (None: always synced)
    forged: bool = False  # clock set by the club and never synced
    doors: tuple[str, ...] = ("front",)
    resume_ms: int | None = None  # nothing observed from boot until then (install boot)


@dataclass(slots=True)
class _Cut:
    """Power off from ``start`` to ``end``; the next boot lists ``doors``."""

    start: int
    end: int
    offset_ms: int | None = None  # a forged-clock segment inside (the clock attack)
    doors: tuple[str, ...] = ("front",)


@dataclass(slots=True)
class _Plan:
    """Who the city is, decided before any device runs."""

    lesson_kind: dict[tuple[str, date], str] = field(default_factory=dict)
    two_readers: set[str] = field(default_factory=set)
    # (group at B, date) -> children of A whose card or confirmation B claims.
    double_book: dict[tuple[str, date], list[Child]] = field(default_factory=dict)
    force_attend: dict[tuple[str, date], set[str]] = field(default_factory=dict)
    price_raised: dict[tuple[str, int], tuple[date, date]] = field(default_factory=dict)
    cancelled: set[tuple[str, date]] = field(default_factory=set)  # regular lesson not held
    fake_lessons: set[tuple[str, date]] = field(default_factory=set)  # late make-up / moved
    makeups: set[tuple[str, date]] = field(default_factory=set)


_SIZES = ((1, 0.60), (2, 0.25), (3, 0.10), (4, 0.04), (5, 0.005), (6, 0.005))
_FAMILY = ((1, 0.55), (2, 0.30), (3, 0.13), (4, 0.02))


def _draw(rng: random.Random, table: tuple[tuple[int, float], ...]) -> int:
    x = rng.random()
    for value, p in table:
        x -= p
        if x < 0:
            return value
    return table[-1][0]


def _start(center_no: int, slot: int) -> time:
    """Slot start: 14:00 (15:00 at odd centers) + slot x 1 h 45 min."""
    minutes = 14 * 60 + (center_no % 2) * 60 + slot * 105
    return time(minutes // 60, minutes % 60)


def _plus(at: time, minutes: int) -> time:
    m = at.hour * 60 + at.minute + minutes
    return time(m // 60, m % 60)


def _minutes(at: time) -> int:
    return at.hour * 60 + at.minute


def _apart(a: list[ScheduleEntry], b: list[ScheduleEntry], gap: int) -> bool:
    """No lesson of ``a`` within ``gap`` minutes of one of ``b`` on the same weekday."""
    for x in a:
        for y in b:
            if x.weekday == y.weekday and not (
                _minutes(y.start) - _minutes(x.end) >= gap
                or _minutes(x.start) - _minutes(y.end) >= gap
            ):
                return False
    return True


def generate(config: CityConfig, uplink: Uplink | None = None) -> tuple[City, Uplink]:
    """Build a city and run its devices through ``uplink`` (a :class:`LocalPortal` by default)."""
    rng = random.Random(config.seed)
    zone = ZoneInfo(config.timezone)
    link: Uplink = uplink if uplink is not None else LocalPortal(config.seed, config.sign)
    last = config.first + timedelta(days=config.days - 1)
    centers = config.center_ids()
    kid = "K" if config.prefix == "C" else f"K{config.prefix}"
    schedule: list[ScheduleEntry] = []
    children: list[Child] = []
    entries: dict[str, list[ScheduleEntry]] = defaultdict(list)
    serial = group_no = family_no = 0
    sun: SunCards | None = None
    if config.sun_centers:
        if len(config.sun_master) != 16:
            raise ValueError("sun_centers needs the 16-byte card master key (sun_master)")
        base = local_ms(config.first - timedelta(days=1), time(0), zone)
        sun = SunCards(config.sun_master, base, config.seed)
    for n, center in enumerate(centers):
        made: list[Child] = []
        for k in range(config.groups_per_center):
            group = f"{center}-G{k + 1}"
            slot = k % 4
            start = _start(n, slot)
            end = _plus(start, 90)
            price = rng.choice((2000, 2500, 3000, 3500, 4000, 5000))
            # Slots 1-2 on Mon/Wed/Fri, slots 3-4 on Tue/Thu: back-to-back pairs meet together.
            days = (1, 3, 5) if (k // 2) % 2 == 0 else (2, 4)
            for d in days:
                entries[group].append(ScheduleEntry(group, center, d, start, end, price))
            group_no += 1
            extra = 1 if group_no <= config.extra_children else 0
            for _ in range(config.children_per_group + extra):
                serial += 1
                badges: tuple[str, ...]
                if sun is not None and n < config.sun_centers:
                    badges = (sun_uid(rng),)
                    sun.add(badges[0])
                else:
                    badges = (_uid(rng),) if rng.random() > 0.05 else (_uid(rng), _uid(rng))
                name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
                made.append(Child(f"{kid}{serial:05d}", name, group, center, badges))
        i = 0
        while i < len(made):  # families: siblings are neighbours, mostly in one group
            size = _draw(rng, _FAMILY)
            family_no += 1
            for c in made[i : i + size]:
                c.family = f"F{config.prefix}{family_no:05d}"
            i += size
        children += made
    for group_entries in entries.values():
        schedule += group_entries
    city = City(config, zone, centers, schedule, children, [], [], [], {}, sun=sun)
    plan = _Plan()
    _second_groups(city, rng, entries)
    _makeups(city, rng, entries, plan)
    base_lessons = lessons(city.schedule, config.first, last, zone)
    _deal(city, rng, base_lessons, entries, plan)
    city.lessons = lessons(city.schedule, config.first, last, zone)
    by_group: dict[str, list[Child]] = defaultdict(list)
    for c in children:
        by_group[c.group_id].append(c)
    by_center: dict[str, list[Lesson]] = defaultdict(list)
    for lesson in city.lessons:
        by_center[lesson.center_id].append(lesson)
    extras: dict[str, list[Child]] = defaultdict(list)
    for c in children:
        if c.extra is not None:
            extras[c.extra[1]].append(c)
    families = Counter(c.family for c in children)
    for n, center in enumerate(centers):
        _center(city, rng, n, center, by_center[center], by_group, extras, families, plan, link)
    _spread_collateral(city)
    return city, link


def _spread_collateral(city: City) -> None:
    """An honest row of a child on a day another of its rows was attacked is collateral.

    A double booking or a day-long "lesson" makes the child's honest lesson that day
    overlap the attacked one: the rules rightly mark both (``double_presence``), since
    nothing tells which of the two centers lied; that honest row's evidence is spoiled
    by the attack, not by a rule's mistake.
    """
    touched: set[tuple[str, date]] = set()
    for (child, _, day), t in city.truth.items():
        if t.label != HONEST or "collateral" in t.features:
            touched.add((child, day))
    for (child, _, day), t in city.truth.items():
        if t.label == HONEST and (child, day) in touched:
            t.features.add("collateral")


def _second_groups(
    city: City, rng: random.Random, entries: Mapping[str, list[ScheduleEntry]]
) -> None:
    """Two-club children (another center, 30 min apart) and back-to-back pairs."""
    cfg = city.config
    groups = sorted(entries)
    for c in city.children:
        x = rng.random()
        if x < cfg.two_clubs and len(city.centers) > 1:
            mine = entries[c.group_id]
            options = [
                g
                for g in groups
                if entries[g][0].center_id != c.center_id and _apart(mine, entries[g], 30)
            ]
            same_day = [
                g for g in options if {e.weekday for e in entries[g]} & {e.weekday for e in mine}
            ]
            pick = same_day or options
            if pick:
                g = rng.choice(pick)
                c.extra = ("two_clubs", g, entries[g][0].center_id)
                city.stats["two_club_children"] += 1
        elif x < cfg.two_clubs + cfg.back_to_back:
            k = int(c.group_id.rsplit("-G", 1)[1]) - 1
            nxt = f"{c.center_id}-G{k + 2}"
            if k % 2 == 0 and nxt in entries:
                c.extra = ("back_to_back", nxt, c.center_id)
                city.stats["back_to_back_children"] += 1


def _makeups(
    city: City, rng: random.Random, entries: Mapping[str, list[ScheduleEntry]], plan: _Plan
) -> None:
    """A Saturday make-up for some groups, imported 2-10 days before its date."""
    cfg = city.config
    saturdays = [
        cfg.first + timedelta(days=i)
        for i in range(cfg.days)
        if (cfg.first + timedelta(days=i)).isoweekday() == 6
    ]
    if not saturdays:
        return
    for group in sorted(entries):
        if rng.random() >= cfg.makeups:
            continue
        base = entries[group][0]
        day = rng.choice(saturdays)
        start = _plus(base.start, -4 * 60)  # the weekday slot four hours earlier
        entry = ScheduleEntry(
            group, base.center_id, 6, start, _plus(start, 90), base.price_kzt, day, day
        )
        at = local_ms(day - timedelta(days=rng.randint(2, 10)), time(11), city.zone)
        city.schedule.append(entry)
        city.entry_imported[entry] = (at, "makeup")
        plan.makeups.add((group, day))
        city.stats["makeups"] += 1


def _deal(
    city: City,
    rng: random.Random,
    base: list[Lesson],
    entries: Mapping[str, list[ScheduleEntry]],
    plan: _Plan,
) -> None:
    """Deal the attacks: lessons, days, patient centers, double bookings, late schedules."""
    cfg = city.config
    n_patient = round(len(city.centers) * cfg.patient_centers)
    if len(city.centers) >= 5 and cfg.patient_centers > 0:
        n_patient = max(1, n_patient)
    city.patient_centers = set(rng.sample(city.centers, n_patient)) if n_patient else set()
    plan.two_readers = {c for c in city.centers if rng.random() < cfg.two_readers}
    by_day: dict[tuple[str, date], list[Lesson]] = defaultdict(list)
    for lesson in base:
        by_day[(lesson.center_id, lesson.date)].append(lesson)
    day_no = 0
    for key in sorted(by_day):
        if key[0] in city.patient_centers or rng.random() >= cfg.day_injected:
            continue
        city.day_injections[key] = DAY_KINDS[day_no % len(DAY_KINDS)]
        day_no += 1
    n = 0
    clocks: set[tuple[str, date]] = set()
    for lesson in base:
        key = (lesson.group_id, lesson.date)
        if (
            lesson.center_id in city.patient_centers
            or (lesson.center_id, lesson.date) in city.day_injections
            or key in plan.makeups
            or rng.random() >= cfg.injected
        ):
            continue
        kind = LESSON_KINDS[n % len(LESSON_KINDS)]
        if kind == "clock":
            if (lesson.center_id, lesson.date) in clocks:
                continue  # one forged night per center and date
            clocks.add((lesson.center_id, lesson.date))
        if kind in ("unplugged", "chain_hole") and any(
            plan.lesson_kind.get((x.group_id, x.date)) in ("unplugged", "chain_hole")
            for x in by_day[(lesson.center_id, lesson.date)]
        ):
            continue
        n += 1
        if kind == "split_stack":
            plan.two_readers.add(lesson.center_id)
        plan.lesson_kind[key] = kind
        city.injections[key] = kind
        if kind == "late_schedule":
            _late_schedule(city, rng, lesson, entries, plan, n)
        elif kind == "long_lesson":
            e = entries[lesson.group_id][0]
            entry = ScheduleEntry(
                e.group_id, e.center_id, lesson.date.isoweekday(), time(8), time(21),
                e.price_kzt, lesson.date, lesson.date,
            )  # fmt: skip
            at = local_ms(lesson.date - timedelta(days=3), time(11), city.zone)
            city.schedule.append(entry)
            city.entry_imported[entry] = (at, "long")
    # Double bookings: a child of center A claimed by B in an overlapping lesson.
    by_group_day = {(x.group_id, x.date): x for x in base}
    pairs = [
        (a, b)
        for a in sorted(entries)
        for b in sorted(entries)
        if entries[a][0].center_id != entries[b][0].center_id
        and not _apart(entries[a], entries[b], 0)
    ]
    rng.shuffle(pairs)
    wanted = round(len(city.centers) * cfg.double_bookings)
    if len(city.centers) > 1 and cfg.double_bookings > 0:
        wanted = max(1, wanted)
    victims = [c for c in city.children if c.extra is None]
    by_primary: dict[str, list[Child]] = defaultdict(list)
    for c in victims:
        by_primary[c.group_id].append(c)
    used: set[str] = set()
    for a, b in pairs:
        if wanted <= 0:
            break
        common = [
            d
            for (g, d) in by_group_day
            if g == a
            and (b, d) in by_group_day
            and (b, d) not in plan.lesson_kind
            and (a, d) not in plan.lesson_kind
            and (by_group_day[(b, d)].center_id, d) not in city.day_injections
            and (by_group_day[(a, d)].center_id, d) not in city.day_injections
            and by_group_day[(a, d)].start_ms < by_group_day[(b, d)].end_ms
            and by_group_day[(b, d)].start_ms < by_group_day[(a, d)].end_ms
        ]
        kids = [c for c in by_primary[a] if c.child_id not in used]
        if not common or not kids or entries[b][0].center_id in city.patient_centers:
            continue
        day = rng.choice(sorted(common))
        child = rng.choice(kids)
        used.add(child.child_id)
        child.extra = ("double_booking", b, entries[b][0].center_id)
        plan.double_book.setdefault((b, day), []).append(child)
        plan.force_attend.setdefault((a, day), set()).add(child.child_id)
        city.injections.setdefault((b, day), "double_booking")
        wanted -= 1


def _late_schedule(
    city: City,
    rng: random.Random,
    lesson: Lesson,
    entries: Mapping[str, list[ScheduleEntry]],
    plan: _Plan,
    n: int,
) -> None:
    """A lesson moved, a make-up added or a price raised after the date, imported late."""
    e = next(x for x in entries[lesson.group_id] if x.weekday == lesson.date.isoweekday())
    variant = ("moved", "makeup", "price")[(n // len(LESSON_KINDS)) % 3]
    late = local_ms(lesson.date + timedelta(days=rng.randint(2, 6)), time(12), city.zone)
    if variant == "moved":  # the lesson was not held; the club says it was in the morning
        entry = replace(e, start=time(10), end=time(11, 30), valid_from=lesson.date,
                        valid_to=lesson.date)  # fmt: skip
        plan.cancelled.add((lesson.group_id, lesson.date))
        plan.fake_lessons.add((lesson.group_id, lesson.date))
    elif variant == "makeup":  # a Sunday make-up nobody attended
        day = lesson.date + timedelta(days=7 - lesson.date.isoweekday())
        entry = replace(e, weekday=7, start=time(11), end=time(12, 30), valid_from=day,
                        valid_to=day)  # fmt: skip
        plan.fake_lessons.add((lesson.group_id, day))
        city.injections[(lesson.group_id, day)] = "late_schedule"
        late = local_ms(day + timedelta(days=rng.randint(2, 6)), time(12), city.zone)
    else:  # the price from this date on, raised a week later
        late = local_ms(lesson.date + timedelta(days=8), time(12), city.zone)
        entry = replace(e, price_kzt=e.price_kzt + 1500, valid_from=lesson.date)
        i = city.schedule.index(e)
        ended = replace(e, valid_to=lesson.date - timedelta(days=1))
        city.schedule[i] = ended
        entries[lesson.group_id][entries[lesson.group_id].index(e)] = ended
        city.entry_imported[ended] = (late, "late_schedule")
        city.base_versions[ended] = e
        until = lesson.date + timedelta(days=8)
        plan.price_raised[(lesson.group_id, e.weekday)] = (lesson.date, until)
    city.schedule.append(entry)
    city.entry_imported[entry] = (late, "late_schedule")
    city.stats[f"late_schedule_{variant}"] += 1


def _row(city: City, key: tuple[str, str, date]) -> RowTruth:
    t = city.truth.get(key)
    if t is None:
        t = city.truth[key] = RowTruth()
    return t


def _center(
    city: City,
    rng: random.Random,
    n: int,
    center: str,
    center_lessons: list[Lesson],
    by_group: Mapping[str, list[Child]],
    extras: Mapping[str, list[Child]],
    families: Counter[str],
    plan: _Plan,
    link: Uplink,
) -> None:
    cfg = city.config
    key = _key(f"device-{cfg.seed}-{center}")
    readers = ("main", "side") if center in plan.two_readers else ("main",)
    device = Device(link.enroll(center, key), center, key, readers=readers)
    device.address = f"10.{n // 250}.{n % 250}.2"
    if rng.random() < cfg.unsynced:
        device.never_synced = True
        device.drift_ms = rng.randint(-cfg.unsynced_drift_ms, cfg.unsynced_drift_ms)
    city.devices.append(device)
    begin = local_ms(cfg.first, time(0), city.zone) - 60 * MIN
    finish = local_ms(city.last + timedelta(days=1), time(0), city.zone)
    actions: list[_Action] = []
    cuts: list[_Cut] = []
    holes: list[tuple[int, int, int]] = []  # (from, to, at): records to delete, and when
    down: list[tuple[int, int, bool]] = []  # uploads impossible (network, withheld); lost
    clones: list[tuple[int, int]] = []
    quiet_doors: list[tuple[int, int]] = []  # no honest door event (propped, stuck, no sensor)
    no_door_taps: list[tuple[tuple[str, str, date], int]] = []
    stats = city.stats
    mine: list[RowTruth] = []

    # Back-to-back rows -> the first lesson's row, whose tap is the evidence of both.
    carried: dict[tuple[str, str, date], tuple[str, str, date]] = {}

    def truth(key: tuple[str, str, date]) -> RowTruth:
        t = _row(city, key)
        mine.append(t)
        return t

    # Honest network outages and power cuts over the period.
    span = finish - begin
    for _ in range(_poisson(rng, cfg.short_outages_per_week * span / (7 * DAY))):
        a = rng.randrange(begin, finish)
        down.append((a, a + rng.randint(1, 10) * MIN, rng.random() < 0.5))
        stats["outages_short"] += 1
    for _ in range(_poisson(rng, cfg.long_outages_per_month * span / (30 * DAY))):
        a = rng.randrange(begin, finish)
        down.append((a, a + rng.randint(2 * 60, 48 * 60) * MIN, rng.random() < 0.5))
        stats["outages_long"] += 1
    for _ in range(_poisson(rng, cfg.power_cuts_per_month * span / (30 * DAY))):
        a = rng.randrange(begin + HOUR, finish - HOUR)
        cuts.append(_Cut(a, a + rng.randint(1, 30) * MIN))
        stats["power_cuts"] += 1
    days = sorted({x.date for x in center_lessons})
    warm = {d for d in days if rng.random() < cfg.warm_days}
    for d in days:
        kind = city.day_injections.get((center, d))
        noon = local_ms(d, time(12), city.zone)
        if kind == "no_door_config":
            cuts.append(_Cut(noon, noon + MIN, doors=()))
            back = local_ms(d, time(23, 40), city.zone)
            cuts.append(_Cut(back, back + MIN))
            quiet_doors.append((noon, back + MIN))
        elif kind == "door_stuck_open":
            at = local_ms(d, time(11), city.zone)
            cuts.append(_Cut(at, at + MIN))
            actions.append(_door(at + 2 * MIN, "open"))
            shut = local_ms(d, time(23, 45), city.zone)
            actions.append(_door(shut, "closed"))
            quiet_doors.append((at + 2 * MIN + 1, shut - 1))
        elif kind == "withheld":
            long = rng.random() < 0.3
            until = noon + (7 * DAY if long else 11 * HOUR)
            down.append((noon, until, False))
            stats["withheld_week" if long else "withheld_afternoon"] += 1
    attended: dict[tuple[str, date], tuple[int, set[str]]] = {}  # group -> (end, children)
    tainted_days = {
        x.date for x in center_lessons if plan.lesson_kind.get((x.group_id, x.date)) in _TAINT_DAY
    }
    for lesson in center_lessons:
        gkey = (lesson.group_id, lesson.date)
        kind = plan.lesson_kind.get(gkey)
        dkind = city.day_injections.get((center, lesson.date))
        if gkey in plan.double_book:
            kind = kind or "double_booking"
        patient = center in city.patient_centers and rng.random() < 0.6
        start, end = lesson.start_ms, lesson.end_ms
        city.stats["lessons"] += 1
        primary = by_group[lesson.group_id]
        seconds = [
            c
            for c in extras.get(lesson.group_id, ())
            if c.extra is not None and c.extra[0] != "double_booking"
        ]
        taint = dkind is not None or kind in _TAINT_LESSON or lesson.date in tainted_days
        fake_lesson = gkey in plan.fake_lessons
        cancelled = gkey in plan.cancelled or fake_lesson
        forced = plan.force_attend.get(gkey, set())
        attending = (
            set()
            if cancelled
            else {c.child_id for c in primary if c.child_id in forced or rng.random() < cfg.attend}
        )
        # Back-to-back children stay after the first lesson (no tap of their own here).
        stayed: set[str] = set()
        for c in seconds:
            assert c.extra is not None
            if c.extra[0] == "back_to_back":
                first_group = c.group_id
                before = attended.get((first_group, lesson.date))
                if before and c.child_id in before[1] and start - before[0] <= 30 * MIN:
                    stayed.add(c.child_id)
                    continue
            if not cancelled and rng.random() < cfg.attend:
                attending.add(c.child_id)
        members = {c.child_id: c for c in [*primary, *seconds]}
        absent = [c for c in primary if c.child_id not in attending]
        label = "late_schedule" if fake_lesson else _fraud_label(kind, dkind, patient)
        want = 0 if fake_lesson else _fake_count(rng, label)
        want = min(want, sum(c.extra is None for c in primary))
        if want:
            while sum(c.extra is None for c in absent) < want:  # make room: the club
                # claims children who stayed home
                pick = rng.choice(
                    [c for c in primary if c.child_id in attending and c.extra is None]
                )
                attending.discard(pick.child_id)
                absent.append(pick)
        if fake_lesson:
            fakes = rng.sample(primary, min(len(primary), rng.randint(3, 6)))
        else:
            # Claimed children are away from the center (not early for a lesson there).
            away = [c for c in absent if c.extra is None]
            fakes = rng.sample(away, min(want, len(away))) if want else []
        arrivals = [members[x] for x in sorted(attending) if x in members]
        arrivals.sort(key=lambda c: (c.family, rng.random()))  # siblings side by side
        fam_order = {f: rng.random() for f in sorted({c.family for c in arrivals})}
        arrivals.sort(key=lambda c: fam_order[c.family])
        tapped = [c for c in arrivals if rng.random() >= cfg.forget_tap]
        forgot = {c.child_id for c in arrivals} - {c.child_id for c in tapped}
        propped = lesson.date in warm and not cancelled
        if propped:
            a = start - rng.randint(20, 40) * MIN
            b = start + rng.randint(11, 30) * MIN  # after the last arrival's tap
            actions.append(_door(a, "open"))
            actions.append(_door(b, "closed"))
            quiet_doors.append((a + 1, b - 1))
            stats["doors_propped"] += 1
        stats["arrivals"] += len(arrivals)
        stats["forgot_tap"] += len(forgot)
        _clusters(rng, actions, tapped, start - 30 * MIN, start + 10 * MIN, readers, lesson, stats)
        leaving = [
            c
            for c in [*tapped, *(members[x] for x in sorted(stayed))]
            if not _stays_on(c, lesson) and rng.random() < cfg.depart_tap
        ]
        stats["departures"] += len(leaving)
        _clusters(rng, actions, leaving, end, end + 10 * MIN, readers, None, stats, leave=True)
        attended[gkey] = (end, set(attending) | stayed)
        # Ground truth and confirmations of the children who were there.
        for c in arrivals + [members[x] for x in sorted(stayed)]:
            row = truth((c.child_id, lesson.group_id, lesson.date))
            row.present = True
            if c.child_id in stayed:
                row.features.add("back_to_back")
                # The one tap before the first lesson covers the stay, if it was recorded.
                carried[(c.child_id, lesson.group_id, lesson.date)] = (
                    c.child_id,
                    c.group_id,
                    lesson.date,
                )
            if c.child_id in forgot:
                row.features.add("forgot_tap")
            if propped:
                row.features.add("propped")
            if device.never_synced:
                row.features.add("no_ntp")
            if c.extra is not None and c.extra[0] == "two_clubs":
                row.features.add("two_clubs")
            if gkey in plan.makeups:
                row.features.add("makeup")
            if taint:
                row.features.add("collateral")
            if label == "shared_signer":
                row.features.add("collateral")
                city.confirmations.append(_confirm_club(rng, c, lesson, city.zone, center))
                row.confirmed = True
            elif rng.random() >= cfg.forget_confirm:
                conf = _confirm(rng, c, lesson, city.zone)
                city.confirmations.append(conf)
                row.confirmed = True
                if _late(conf, lesson, city.zone):
                    row.features.add("late_confirmation")
                    stats["late_confirmations"] += 1
                if families[c.family] >= 4:
                    row.features.add("family_of_4")
            else:
                stats["forgot_confirm"] += 1
            raised = plan.price_raised.get((lesson.group_id, lesson.date.isoweekday()))
            if raised and raised[0] <= lesson.date < raised[1] and row.confirmed:
                row.label = "late_schedule"  # paid at a price raised after the date
        # The fraud: claimed children, their confirmations and the club's records.
        for c in fakes:
            assert label is not None  # only a class claims children
            row = truth((c.child_id, lesson.group_id, lesson.date))
            row.label = label
            row.confirmed = True
            if label == "shared_signer":
                city.confirmations.append(_confirm_club(rng, c, lesson, city.zone, center))
            elif label == "early_confirmation":
                city.confirmations.append(_confirm_early(rng, c, lesson, city.zone))
            else:
                city.confirmations.append(_confirm(rng, c, lesson, city.zone))
        for c in plan.double_book.get(gkey, []):
            row = truth((c.child_id, lesson.group_id, lesson.date))
            row.label, row.confirmed = "double_booking", True
            city.confirmations.append(_confirm(rng, c, lesson, city.zone))
            if rng.random() < 0.5:  # a copy of the card read at B; else the confirmation alone
                _patient(rng, actions, [c], start - 20 * MIN, start + 5 * MIN, "main")
            stats["double_bookings"] += 1
        _fraud_records(
            city, rng, label, fakes, lesson, actions, cuts, holes, clones, readers,
            no_door_taps,
        )  # fmt: skip
        if label is None and kind is None and dkind is None and rng.random() < cfg.offline_lessons:
            cuts.append(_Cut(start - 35 * MIN, end + 15 * MIN))
            stats["offline_lessons"] += 1
            for c in arrivals:
                truth((c.child_id, lesson.group_id, lesson.date)).features.add("power_cut")
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
                row = truth((c.child_id, group, day))
                row.label, row.confirmed = "no_lesson", True
                city.injections[(group, day)] = "no_lesson"
                break
    # No door event while the door is propped or stuck open, or while the device runs
    # without a door sensor (the propped or stuck pair itself lies just outside).
    if quiet_doors:
        quiet_doors.sort()
        starts = [a for a, _ in quiet_doors]

        def quiet(at: int) -> bool:
            i = bisect.bisect_right(starts, at) - 1
            return any(a <= at <= b for a, b in quiet_doors[max(0, i - 3) : i + 1])

        actions = [a for a in actions if a.type != "door" or not quiet(a.true_ms)]
    install = begin - cfg.install_days * DAY - rng.randint(0, 30) * DAY
    segments = _segments(rng, cfg, install, begin, finish, cuts, device.never_synced)
    stats["boots"] += len(segments)
    stats["boots_clock_wrong_then_synced"] += sum(s.sync_ms is not None for s in segments)
    stats["boots_clock_forged"] += sum(s.forged for s in segments)
    stats["devices_never_synced"] += device.never_synced
    stats["devices_two_readers"] += len(readers) > 1
    # A tap with the door shut: never_rebooted while the device's last boot is the install.
    first_reboot = segments[1].start if len(segments) > 1 else finish
    for key_, at in no_door_taps:
        city.truth[key_].label = "never_rebooted" if at < first_reboot else "no_door"
    if city.sun is not None:
        # A real card mirrors a fresh message at every read, whoever holds it: a stack
        # of collected cards proves each card was there, not that its child was.
        for act in sorted(actions, key=lambda x: (x.true_ms, x.order)):
            if act.type == "badge" and act.data["uid"] in city.sun.uids:
                act.data = {**act.data, "card": city.sun.read(act.data["uid"], act.true_ms)}
    recorded = _run(cfg, rng, device, actions, segments, holes, down, clones, link)
    for key_ in recorded:
        t = city.truth.get(key_)
        if t is not None and t.present:
            t.tapped = True
    for key_, first_key in carried.items():
        city.truth[key_].tapped = city.truth[first_key].tapped
        if "forgot_tap" in city.truth[first_key].features:
            city.truth[key_].features.add("forgot_tap")
    for t in mine:
        if t.present and t.label == HONEST and not t.tapped and "forgot_tap" not in t.features:
            t.features.add("tap_lost")  # a power cut or a deleted record took it
    stats["lost_answers"] += sum(lost for _, _, lost in down)


def _stays_on(c: Child, lesson: Lesson) -> bool:
    """A back-to-back child leaves after the second lesson, not the first."""
    return (
        c.extra is not None
        and c.extra[0] == "back_to_back"
        and c.group_id == lesson.group_id
        and lesson.date.isoweekday() <= 5
    )


def _poisson(rng: random.Random, mean: float) -> int:
    n, t = 0, rng.expovariate(1.0)
    while t < mean:
        n += 1
        t += rng.expovariate(1.0)
    return n


def _fake_count(rng: random.Random, label: str | None) -> int:
    """How many absent children the club claims in one lesson of this class."""
    if label is None:
        return 0
    if label in ("slow_stack", "split_stack"):
        return rng.randint(6, 9)
    if label == "card_stack":
        return rng.randint(5, 6)
    if label == "runs_of_four":
        return rng.choice((8, 12))
    return rng.randint(1, 3)


def _fraud_label(kind: str | None, dkind: str | None, patient: bool) -> str | None:
    if dkind is not None:
        return dkind
    if kind in ("double_booking", "late_schedule"):
        return "patient" if patient else None
    if kind is not None:
        return kind
    return "patient" if patient else None


def _fraud_records(
    city: City,
    rng: random.Random,
    label: str | None,
    fakes: list[Child],
    lesson: Lesson,
    actions: list[_Action],
    cuts: list[_Cut],
    holes: list[tuple[int, int, int]],
    clones: list[tuple[int, int]],
    readers: tuple[str, ...],
    no_door_taps: list[tuple[tuple[str, str, date], int]],
) -> None:
    """The club's records for its claimed children (``fakes``), by attack class."""
    start, end = lesson.start_ms, lesson.end_ms
    cards = [c.badges[0] for c in fakes]
    t = start + 31 * MIN
    if label is None:
        return
    if label in ("patient", "early_confirmation", "shared_signer", "long_lesson"):
        lo, hi = (start - 30 * MIN, start + 10 * MIN)
        if label == "long_lesson":
            lo, hi = (
                local_ms(lesson.date, time(9), city.zone),
                local_ms(lesson.date, time(12), city.zone),
            )
        _patient(rng, actions, fakes, lo, hi, readers[0])
    elif label == "late_schedule":  # the moved lesson or the late make-up: cards tapped then
        _patient(rng, actions, fakes, start - 20 * MIN, start + 10 * MIN, "main")
    elif label == "card_stack":
        for uid in cards:
            actions.append(_badge(t, uid))
            t += rng.randint(300, 1200)
    elif label == "slow_stack":
        actions.append(_door(t - rng.randint(1000, 3000), "open"))
        for uid in cards:
            actions.append(_badge(t, uid))
            t += rng.randint(1600, 3000)
        actions.append(_door(t + rng.randint(5000, 15000), "closed"))
    elif label == "split_stack":
        actions.append(_door(t - 2000, "open"))
        for i, uid in enumerate(cards):
            actions.append(_badge(t, uid, readers[i % len(readers)]))
            t += rng.randint(500, 1400)
        actions.append(_door(t + 8000, "closed"))
    elif label == "runs_of_four":
        for i, uid in enumerate(cards):
            if i and i % 4 == 0:
                t += rng.randint(5000, 60_000)
            actions.append(_badge(t, uid))
            t += rng.randint(400, 1400)
    elif label == "never_rebooted":
        for i, c in enumerate(fakes):
            at = t + i * rng.randint(2, 5) * MIN
            actions.append(_badge(at, c.badges[0]))
            no_door_taps.append(((c.child_id, lesson.group_id, lesson.date), at))
    elif label == "simulated":
        actions.append(_door(t, "open"))
        for i, uid in enumerate(cards):
            actions.append(_badge(t + 5000 + i * 3000, uid, "desk", "simulated"))
        actions.append(_door(t + 30_000, "closed"))
    elif label == "renamed_simulator":
        driver = rng.choice(("sim", "Simulated", "rdm6300"))
        _patient(rng, actions, fakes, start - 30 * MIN, start + 10 * MIN, "main", driver)
    elif label == "chain_hole":
        actions.append(
            _Action(
                start + 26 * MIN, 1, "reader", {"reader": "main", "state": "fault",
                                                "detail": "timeout"}
            )
        )  # fmt: skip
        holes.append((start + 24 * MIN, start + 29 * MIN, start + 30 * MIN))
        actions.append(_door(t, "open"))
        for i, uid in enumerate(cards):
            actions.append(_badge(t + 4000 + i * 4000, uid))
        actions.append(_door(t + 20_000, "closed"))
    elif label == "clock":
        night = lesson.date + timedelta(days=1)
        at = local_ms(night, time(2, 7), city.zone)
        claim = start + 20 * MIN
        cuts.append(_Cut(at, at + 40 * MIN, claim - (at + 10 * MIN)))
        for i, uid in enumerate(cards):
            actions.append(_badge(at + 10 * MIN + i * 20_000, uid))
    elif label == "unplugged":
        cuts.append(_Cut(start - 35 * MIN, end + 15 * MIN))
    elif label == "backdated_online":
        at = local_ms(lesson.date, time(23, 10), city.zone)
        anchor = rng.choice(("", "old"))
        for i, uid in enumerate(cards):
            claim = start - rng.randint(5, 25) * MIN
            for a in (
                _door(at + i * 20_000, "open"),
                _badge(at + i * 20_000 + 2000, uid),
                _door(at + i * 20_000 + 9000, "closed"),
            ):
                a.claim_ms, a.anchor = claim + (a.true_ms - at - i * 20_000), anchor
                actions.append(a)
    elif label == "withheld":  # fabricated after the lesson, uploaded in the one batch
        at = end + 3 * HOUR
        for i, uid in enumerate(cards):
            claim = start - rng.randint(5, 25) * MIN
            for a in (
                _door(at + i * 20_000, "open"),
                _badge(at + i * 20_000 + 2000, uid),
                _door(at + i * 20_000 + 9000, "closed"),
            ):
                a.claim_ms = claim + (a.true_ms - at - i * 20_000)
                actions.append(a)
    elif label == "cloned_device":  # a second Pi elsewhere taps the cards, same chain
        clones.append((start - 30 * MIN, end))
        before = len(actions)
        _patient(rng, actions, fakes, start - 30 * MIN, start + 10 * MIN, "main")
        for a in actions[before:]:
            a.author, a.tag = "clone", ""
    elif label == "door_stuck_open" or label == "no_door_config":
        _patient(rng, actions, fakes, start - 30 * MIN, start + 10 * MIN, "main", doors=False)
    elif label == "ghost":
        pass  # confirmations only


def _patient(
    rng: random.Random,
    actions: list[_Action],
    fakes: list[Child] | list[str],
    lo: int,
    hi: int,
    reader: str,
    driver: str = "mfrc522",
    *,
    doors: bool = True,
) -> None:
    """Cards tapped one by one, each with its own door opening, spread over [lo, hi]."""
    cards = [c if isinstance(c, str) else c.badges[0] for c in fakes]
    slots = sorted(
        rng.sample(
            range(0, max(1, (hi - lo) // 60_000)), min(len(cards), max(1, (hi - lo) // 60_000))
        )
    )
    for uid, m in zip(cards, slots, strict=False):
        t = lo + m * 60_000 + rng.randint(3000, 50_000)
        if doors:
            actions.append(_door(t - rng.randint(1000, 3000), "open"))
        actions.append(_badge(t, uid, reader, driver))
        if doors:
            actions.append(_door(t + rng.randint(5000, 15_000), "closed"))


def _door(at: int, state: str, tag: str = "") -> _Action:
    return _Action(at, 0, "door", {"sensor": "front", "state": state}, tag=tag)


def _badge(at: int, uid: str, reader: str = "main", driver: str = "mfrc522") -> _Action:
    return _Action(
        at, 1, "badge", {"reader": reader, "driver": driver, "uid": uid, "uid_len": len(uid) // 2}
    )


def _gap_ms(rng: random.Random) -> int:
    """Time between two taps in a cluster: 1-4 s, about one in ten under 1.5 s."""
    if rng.random() < 0.1:
        return rng.randint(1000, 1499)
    return rng.randint(1500, 4000)


def _clusters(
    rng: random.Random,
    actions: list[_Action],
    kids: list[Child],
    lo: int,
    hi: int,
    readers: tuple[str, ...],
    lesson: Lesson | None,
    stats: Counter[str],
    *,
    leave: bool = False,
) -> None:
    """Taps in clusters, each behind its own door opening, first taps spread over [lo, hi]."""
    i = 0
    while i < len(kids):
        size = _draw(rng, _SIZES)
        group = kids[i : i + size]
        stats[f"{'leave' if leave else 'cluster'}_{len(group)}"] += 1
        t = rng.randint(lo, max(lo, hi - 20_000))
        actions.append(_door(t - rng.randint(1000, 3000), "open", "cluster"))
        for k, c in enumerate(group):
            if k:
                gap = _gap_ms(rng)
                t += gap
                stats["gaps"] += 1
                stats["gaps_under_1500"] += gap < 1500
            action = _badge(t, rng.choice(c.badges), rng.choice(readers))
            if lesson is not None:
                action.row = (c.child_id, lesson.group_id, lesson.date)
            actions.append(action)
        actions.append(_door(t + rng.randint(5000, 15_000), "closed", "cluster"))
        i += size


def _stamp(at_ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(at_ms / 1000, tz=zone).strftime("%Y-%m-%d %H:%M")


def _confirm(rng: random.Random, c: Child, lesson: Lesson, zone: ZoneInfo) -> Confirmation:
    """Honest timing: mostly the same evening, some days later (up to 5)."""
    x = rng.random()
    if x < 0.7:
        delay = rng.randint(30, 5 * 60) * MIN
    elif x < 0.92:
        delay = rng.randint(5 * 60, 48 * 60) * MIN
    else:
        delay = rng.randint(48 * 60, 5 * 24 * 60) * MIN
    end = max(lesson.end_ms, lesson.start_ms)
    return Confirmation(
        c.child_id, lesson.group_id, lesson.date, _stamp(end + delay, zone), f"parent-{c.family}"
    )


def _late(conf: Confirmation, lesson: Lesson, zone: ZoneInfo) -> bool:
    at = datetime.strptime(conf.confirmed_at, "%Y-%m-%d %H:%M").replace(tzinfo=zone)
    return at.timestamp() * 1000 - lesson.end_ms > DAY


def _confirm_early(rng: random.Random, c: Child, lesson: Lesson, zone: ZoneInfo) -> Confirmation:
    at = lesson.start_ms - rng.randint(10, 48 * 60) * MIN
    return Confirmation(c.child_id, lesson.group_id, lesson.date, _stamp(at, zone),
                        f"parent-{c.family}")  # fmt: skip


def _confirm_club(
    rng: random.Random, c: Child, lesson: Lesson, zone: ZoneInfo, center: str
) -> Confirmation:
    at = lesson.end_ms + rng.randint(30, 180) * MIN
    return Confirmation(
        c.child_id, lesson.group_id, lesson.date, _stamp(at, zone), f"admin-{center}"
    )


def _segments(
    rng: random.Random,
    cfg: CityConfig,
    install: int,
    begin: int,
    finish: int,
    cuts: list[_Cut],
    never_synced: bool = False,
) -> list[_Segment]:
    """Power-on stretches: the install boot (quiet until ``begin``), then one per cut."""
    spans = sorted(
        [(c.start, c.end, None, c.doors) for c in cuts if c.offset_ms is None]
        + [
            (c.start - MIN, c.end + MIN, c.offset_ms, c.doors)
            for c in cuts
            if c.offset_ms is not None
        ],
        key=lambda x: x[0],
    )
    out: list[_Segment] = [_Segment(install, begin, resume_ms=begin)]
    t = begin
    doors: tuple[str, ...] = ("front",)
    for a, b, offset, next_doors in spans:
        if a > t:
            out.append(_Segment(t, a, doors=doors))
        if offset is not None:
            out.append(_Segment(a + MIN, b - MIN, offset, None, True, doors))
        else:
            doors = next_doors
        t = max(t, b)
    out.append(_Segment(t, finish, doors=doors))
    # The install boot and the first stretch are one boot: the device never stopped.
    first = out.pop(1) if len(out) > 1 and out[1].start == begin else None
    if first is not None:
        out[0].end = first.end
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
    down: list[tuple[int, int, bool]],
    clones: list[tuple[int, int]],
    link: Uplink,
) -> set[tuple[str, str, date]]:
    """Power each segment, make records, upload on schedule, delete and declare holes.

    Uploads fail while the network is down (``down``); an outage marked lost starts
    with a batch the portal stored and acknowledged without the device hearing back.
    Returns the rows whose honest arrival tap was recorded.
    """
    recorded: set[tuple[str, str, date]] = set()
    step_hb, step_up = cfg.heartbeat_s * 1000, cfg.upload_s * 1000
    actions.sort(key=lambda a: (a.true_ms, a.order))
    seq, prev, anchor = 0, ZERO_HASH, ""
    anchor_at: int | None = None
    held: list[tuple[int, str, int]] = []  # (server_ms, hash) of every receipt the device got
    pending: list[tuple[dict[str, Any], TrueRecord]] = []
    stored = 0  # the highest seq the portal holds
    hole_queue = sorted(holes)
    down = sorted(down)
    down_starts = [a for a, _, _ in down]
    lost_used: set[int] = set()
    retry_at = 0
    k = 0
    never = 2**62
    lag = cfg.upload_lag_ms
    clone_address = f"198.51.100.{int(device.key.public_key().public_bytes_raw()[0]) % 250 + 1}"
    clone_boot = hashlib.sha256(f"clone-{device.device_id}".encode()).hexdigest()[:32]
    clone_boot = "-".join(
        (clone_boot[:8], clone_boot[8:12], clone_boot[12:16], clone_boot[16:20], clone_boot[20:])
    )
    address = device.address

    def outage(now: int) -> int | None:
        i = bisect.bisect_right(down_starts, now) - 1
        for j in range(max(0, i - 4), i + 1):
            a, b, _ = down[j]
            if a <= now < b:
                return j
        return None

    def make(seg: _Segment, boot: str, at: int, kind: str, data: dict[str, Any],
             act: _Action | None = None) -> None:  # fmt: skip
        nonlocal seq, prev
        seq += 1
        wrong = seg.forged or (seg.sync_ms is not None and at < seg.sync_ms)
        claimed = at + seg.offset_ms if wrong else at + device.drift_ms
        synced = not wrong and not device.never_synced
        mono = (at - seg.start + 4000) * 1_000_000
        held_anchor, held_at = anchor, anchor_at
        author = ""
        if act is not None:
            if act.claim_ms is not None:
                # Forged like the device's own records: a never-synced device says unsynced.
                claimed, synced = act.claim_ms, not device.never_synced
                if act.anchor == "":
                    held_anchor, held_at = "", None
                elif act.anchor == "old":
                    i = bisect.bisect_right(held, (act.claim_ms, "~", 0)) - 1
                    held_anchor, held_at = (held[i][1], held[i][0]) if i >= 0 else ("", None)
            if act.author == "clone":
                author, boot = "clone", clone_boot
                mono = (at - clones[0][0] + 9000) * 1_000_000 if clones else mono
                claimed, synced = at + device.drift_ms, not device.never_synced
        boot, mono = boot_epoch(boot, mono)  # as the agent cuts a boot past 2^52 ns
        body: dict[str, Any] = {
            "v": 1,
            "device": device.device_id,
            "seq": seq,
            "prev": prev,
            "type": kind,
            "wall_ms": claimed,
            "synced": synced,
            "boot": boot,
            "mono_ns": mono,
            "anchor": held_anchor,
            "data": data,
        }
        if cfg.sign:
            record = build_record(device.key, **{k: v for k, v in body.items() if k != "v"})
        else:
            record = dict(body)
            record["hash"] = seal_digest(body, checked=True)[1]
            record["sig"] = ""
        prev = record["hash"]
        truth = TrueRecord(seq, kind, at, claimed, seg.forged, data, synced, boot, held_at)
        truth.author = author
        device.truth.append(truth)
        pending.append((record, truth))

    def send(
        records: list[tuple[dict[str, Any], TrueRecord]], now: int, keep: bool = False
    ) -> None:
        """Upload in runs by author (the clone from its own address)."""
        nonlocal anchor, anchor_at, stored
        receipt = ""
        i = 0
        while i < len(records):
            j = i
            while j < len(records) and records[j][1].author == records[i][1].author:
                j += 1
            run = records[i:j]
            device.records += [r for r, _ in run if r["seq"] > stored]
            stored = max(stored, run[-1][0]["seq"])
            where = clone_address if run[0][1].author == "clone" else address
            receipt = link.upload(device, [r for r, _ in run], now, where)
            for _, t in run:
                if t.covered_ms is None:
                    t.covered_ms = now
            i = j
        if receipt and not keep:
            anchor, anchor_at = receipt, now
            held.append((now, receipt, 0))

    def eager_due(seg: _Segment) -> int:
        """When a device that uploads like the agent sends what is pending."""
        if not device.never_synced or not pending:
            return never
        due = max(pending[0][1].true_ms, seg.start, retry_at) + lag
        # Keep records a scheduled hole will delete until the hole is declared.
        if any(lo <= due <= at + lag for lo, _, at in hole_queue):
            return never
        return due

    def upload(now: int) -> None:
        nonlocal anchor, anchor_at, retry_at, address, stored
        j = outage(now)
        if j is not None:
            a, b, lost = down[j]
            if lost and j not in lost_used and pending:
                lost_used.add(j)  # stored and acknowledged; the answer never arrives
                send(pending[:], now, keep=True)
            retry_at = b
            if b - a > 2 * HOUR and rng.random() < 0.3:
                address = f"10.{rng.randrange(250)}.{rng.randrange(250)}.3"  # a new lease
            return
        batch = pending[:]
        pending.clear()
        while hole_queue and hole_queue[0][2] <= now:
            lo, hi, _ = hole_queue.pop(0)
            lost_ = [(r, t) for r, t in batch if lo <= t.true_ms <= hi]
            if not lost_:
                continue
            first_seq, last_seq = lost_[0][1].seq, lost_[-1][1].seq
            before = [(r, t) for r, t in batch if t.seq < first_seq]
            after = [(r, t) for r, t in batch if t.seq > last_seq]
            if before:
                send(before, now)
            for _, t in lost_:
                t.kept = False
            gap = {
                "first_seq": first_seq,
                "last_seq": last_seq,
                "last_hash": lost_[-1][0]["hash"],
                "reason": "quarantined",
            }
            make(current, boot_id, now, "gap", gap)
            gap_record, _ = pending.pop()
            anchor, anchor_at = link.declare_gap(device, gap_record, now), now
            held.append((now, anchor, 0))
            device.holes.append((first_seq, last_seq))
            stored = max(stored, last_seq)
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
                "readers": list(device.readers),
                "doors": list(current.doors),
            },
        )
        begin_at = current.start
        if current.resume_ms is not None:
            send(pending[:], current.start + 1000)  # the install: online, then quiet
            pending.clear()
            begin_at = current.resume_ms
        hb = (begin_at // step_hb + 1) * step_hb
        up = (begin_at // step_up + 1) * step_up
        while k < len(actions) and actions[k].true_ms < begin_at:
            k += 1  # power was off: nothing observed
        while True:
            due = eager_due(current)
            nxt = min(hb, up, due, actions[k].true_ms if k < len(actions) else current.end)
            if nxt >= current.end:
                break
            if k < len(actions) and actions[k].true_ms == nxt:
                act = actions[k]
                make(current, boot_id, nxt, act.type, act.data, act)
                if act.row is not None:
                    recorded.add(act.row)
                k += 1
            elif hb == nxt:
                make(
                    current,
                    boot_id,
                    hb,
                    "heartbeat",
                    {
                        "pending": len(pending),
                        "readers": dict.fromkeys(device.readers, "ok"),
                        "uptime_s": (hb - current.start) // 1000,
                    },
                )
                hb += step_hb
            elif due == nxt:
                upload(due)
                if pending and eager_due(current) <= due:
                    retry_at = max(retry_at, due + step_hb)
            else:
                upload(up + 1000)
                up += step_up
        while k < len(actions) and actions[k].true_ms < current.end:
            k += 1
    if pending:
        retry_at = 0
        end = segments[-1].end + 1000
        while outage(end) is not None:
            end = down[outage(end) or 0][1] + 1000
        upload(end)
    return recorded


def reconcile_local(
    city: City, link: LocalPortal, settings: Any, centers: Any = None, observe: Any = None
) -> Any:
    """The engine over the city as the in-memory portal holds it (no database);
    ``observe`` is the engine's hook that is shown each center's index."""
    from portal.reconcile.engine import CenterInput, reconcile

    logs = {d.center_id: link.log(d) for d in city.devices}
    events: dict[str, list[IntegrityEvent]] = defaultdict(list)
    owner = {d.device_id: d.center_id for d in city.devices}
    for ev in link.events:
        events[owner[ev.device_id]].append(ev)
    return reconcile(
        city.config.first,
        city.last,
        schedule=city.schedule,
        members=city.members(),
        confirmations=city.confirmations,
        load_center=lambda c: CenterInput(c, [logs[c]] if c in logs else [], events[c]),
        settings=settings,
        zone=city.zone,
        centers=centers,
        observe=observe,
    )
