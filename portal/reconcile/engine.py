"""The reconciliation rules of docs/reconciliation.md, on plain data, one center at a time.

Each center's device logs are placed in trusted time once, reduced to badge
reads, door timelines, boot door lists and a sorted list of record times, and
then every lesson of the center is answered from those with binary searches:
the cost grows with the center's records plus its lessons, never their product,
and nothing here performs I/O (the loader hands in one center at a time).
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from typing import NamedTuple
from zoneinfo import ZoneInfo

from portal.reconcile.lessons import Lesson, ScheduleEntry, lessons
from portal.reconcile.model import (
    Confirmation,
    DeviceLog,
    IntegrityEvent,
    Member,
    ReconcileSettings,
)
from portal.reconcile.trusted_time import place

logger = logging.getLogger(__name__)

CARD_BURST = "card_burst"
NO_DOOR_PASSAGE = "no_door_passage"
TIME_UNTRUSTED = "time_untrusted"
SIMULATED_READER = "simulated_reader"
CHAIN_INTEGRITY = "chain_integrity"
NO_LESSON_SCHEDULED = "no_lesson_scheduled"
REASONS = (
    CARD_BURST,
    NO_DOOR_PASSAGE,
    TIME_UNTRUSTED,
    SIMULATED_READER,
    CHAIN_INTEGRITY,
    NO_LESSON_SCHEDULED,
)
_ORDER = {r: i for i, r in enumerate(REASONS)}

VERIFIED = "verified"
SUSPECT = "suspect"
CONFIRMED_WITHOUT_PRESENCE = "confirmed_without_presence"
CONFIRMED_DEVICE_OFFLINE = "confirmed_device_offline"
PRESENT_NOT_CONFIRMED = "present_not_confirmed"
STATUSES = (
    VERIFIED,
    SUSPECT,
    CONFIRMED_WITHOUT_PRESENCE,
    CONFIRMED_DEVICE_OFFLINE,
    PRESENT_NOT_CONFIRMED,
)
AT_RISK = frozenset({SUSPECT, CONFIRMED_WITHOUT_PRESENCE})


def ordered(reasons: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(reasons), key=lambda r: _ORDER.get(r, len(_ORDER))))


@dataclass(slots=True)
class Read:
    """A badge record placed in time, with the reasons that do not depend on a lesson."""

    device_id: str
    seq: int
    reader: str
    driver: str
    uid: str
    time_ms: int
    wall_ms: int
    trusted: bool
    reasons: set[str] = field(default_factory=set)


class DoorEvent(NamedTuple):
    device_id: str
    sensor: str
    seq: int
    state: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class Coverage:
    """What the center's devices sent during one lesson window (the heartbeat evidence)."""

    window_start_ms: int
    window_end_ms: int
    records: int
    heartbeats: int
    silences: tuple[tuple[int, int], ...]  # stretches longer than the offline threshold

    @property
    def offline(self) -> bool:
        return bool(self.silences)


@dataclass(slots=True)
class Row:
    """One (child, group, date) with its status, reasons and evidence."""

    child_id: str
    group_id: str
    center_id: str
    date: date
    status: str
    reasons: tuple[str, ...]
    price_kzt: int
    lesson: Lesson | None
    reads: tuple[tuple[Read, tuple[str, ...]], ...] = ()
    doors: tuple[DoorEvent, ...] = ()
    coverage: Coverage | None = None
    confirmation: Confirmation | None = None


@dataclass(slots=True)
class CenterInput:
    """One center's device logs and integrity events (what the loader reads)."""

    center_id: str
    logs: list[DeviceLog] = field(default_factory=list)
    events: list[IntegrityEvent] = field(default_factory=list)


@dataclass(slots=True)
class _Timeline:
    times: list[int] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)


class _Center:
    """A center's records reduced to what the rules read."""

    def __init__(self, inp: CenterInput, settings: ReconcileSettings) -> None:
        self.settings = settings
        times: list[int] = []
        self.heartbeats: list[int] = []
        self.reads: list[Read] = []
        self.doors: dict[tuple[str, str], _Timeline] = {}
        self.sensors: dict[str, list[str]] = defaultdict(list)  # device -> its door sensors
        self.boot_doors: dict[str, tuple[list[int], list[tuple[str, ...]]]] = {}
        self.holes: dict[str, list[tuple[int, int]]] = defaultdict(list)
        events = defaultdict(list)
        for ev in inp.events:
            events[ev.device_id].append(ev)
        for log in inp.logs:
            self._take(log, times, events.get(log.device_id, []))
        times.sort()
        self.heartbeats.sort()
        self.times = times
        # Where consecutive records are further apart than the offline threshold, found
        # once per center so that each lesson's coverage is two binary searches.
        limit = settings.offline_ms
        self.silent_after = [k for k, (a, b) in enumerate(pairwise(times)) if b - a > limit]
        for tl in self.doors.values():
            order = sorted(range(len(tl.times)), key=tl.times.__getitem__)
            tl.times = [tl.times[i] for i in order]
            tl.states = [tl.states[i] for i in order]
            tl.seqs = [tl.seqs[i] for i in order]
        self.reads.sort(key=lambda r: r.time_ms)
        self.read_times = [r.time_ms for r in self.reads]
        self._mark_bursts()
        for read in self.reads:
            if not self._door_passage(read):
                read.reasons.add(NO_DOOR_PASSAGE)

    def _take(self, log: DeviceLog, times: list[int], events: list[IntegrityEvent]) -> None:
        placed, trusted = place(log, self.settings.time_tolerance_ms, self.settings.time_bracket_ms)
        times.extend(placed)
        dev = log.device_id
        types = log.type
        self.heartbeats.extend([p for p, t in zip(placed, types, strict=True) if t == "heartbeat"])
        boot_seqs: list[int] = []
        boot_doors: list[tuple[str, ...]] = []
        for i in [i for i, d in enumerate(log.data) if d is not None]:
            data = log.data[i]
            assert data is not None
            kind = types[i]
            if kind == "badge":
                driver = str(data.get("driver", ""))
                read = Read(
                    dev,
                    log.seq[i],
                    str(data.get("reader", "")),
                    driver,
                    str(data.get("uid", "")).upper(),
                    placed[i],
                    log.wall_ms[i],
                    trusted[i],
                )
                if not trusted[i]:
                    read.reasons.add(TIME_UNTRUSTED)
                if driver == "simulated":
                    read.reasons.add(SIMULATED_READER)
                self.reads.append(read)
            elif kind == "door":
                sensor = str(data.get("sensor", ""))
                tl = self.doors.get((dev, sensor))
                if tl is None:
                    tl = self.doors[(dev, sensor)] = _Timeline()
                    self.sensors[dev].append(sensor)
                tl.times.append(placed[i])
                tl.states.append(str(data.get("state", "")))
                tl.seqs.append(log.seq[i])
            elif kind == "boot":
                doors = data.get("doors") or ()
                boot_seqs.append(log.seq[i])
                boot_doors.append(tuple(str(d) for d in doors))
        self.boot_doors[dev] = (boot_seqs, boot_doors)
        for ev in events:
            self.holes[dev].append(self._event_span(ev, log, placed))

    @staticmethod
    def _event_span(ev: IntegrityEvent, log: DeviceLog, placed: list[int]) -> tuple[int, int]:
        if ev.kind != "gap" or ev.first_seq is None or ev.last_seq is None:
            return ev.at_ms, ev.at_ms
        seqs = log.seq

        def time_of(seq: int, default: int) -> int:
            k = bisect_left(seqs, seq)
            return placed[k] if k < len(seqs) and seqs[k] == seq else default

        start = time_of(ev.first_seq - 1, -(2**62) if ev.first_seq <= 1 else ev.at_ms)
        end = time_of(ev.last_seq + 1, ev.at_ms)
        return min(start, end), max(start, end)

    def _mark_bursts(self) -> None:
        by_reader: dict[tuple[str, str], list[Read]] = defaultdict(list)
        for read in self.reads:  # already in time order
            by_reader[(read.device_id, read.reader)].append(read)
        gap, need = self.settings.burst_gap_ms, self.settings.burst_min_uids
        for reads in by_reader.values():
            start = 0
            for k in range(1, len(reads) + 1):
                if k < len(reads) and reads[k].time_ms - reads[k - 1].time_ms < gap:
                    continue
                run = reads[start:k]
                if len({r.uid for r in run}) >= need:
                    for r in run:
                        r.reasons.add(CARD_BURST)
                start = k

    def _door_passage(self, read: Read) -> bool:
        """False only when the device's boot lists doors and none was open within ±window."""
        seqs, lists = self.boot_doors.get(read.device_id, ([], []))
        k = bisect_right(seqs, read.seq) - 1
        if k < 0 or not lists[k]:
            return True
        w = self.settings.door_window_ms
        return any(
            self._open_within(read.device_id, d, read.time_ms - w, read.time_ms + w)
            for d in lists[k]
        )

    def _open_within(self, device: str, sensor: str, lo: int, hi: int) -> bool:
        tl = self.doors.get((device, sensor))
        if tl is None:
            return False
        k = bisect_right(tl.times, lo) - 1
        if k >= 0 and tl.states[k] == "open":
            return True
        end = bisect_right(tl.times, hi)
        return any(tl.states[j] == "open" for j in range(max(k + 1, 0), end))

    def doors_near(self, read: Read) -> list[DoorEvent]:
        w = self.settings.door_window_ms
        out: list[DoorEvent] = []
        device = read.device_id
        for sensor in self.sensors.get(device, ()):
            tl = self.doors[(device, sensor)]
            lo = max(bisect_right(tl.times, read.time_ms - w) - 1, 0)
            hi = bisect_right(tl.times, read.time_ms + w)
            out.extend(
                DoorEvent(device, sensor, tl.seqs[j], tl.states[j], tl.times[j])
                for j in range(lo, hi)
            )
        return out

    def coverage(self, lo: int, hi: int) -> Coverage:
        times = self.times
        i, j = bisect_left(times, lo), bisect_right(times, hi)
        limit = self.settings.offline_ms
        if i == j:
            silences: tuple[tuple[int, int], ...] = ((lo, hi),) if hi - lo > limit else ()
        else:
            gaps = self.silent_after  # k: times[k + 1] - times[k] > limit
            inner = [
                (times[k], times[k + 1])
                for k in gaps[bisect_left(gaps, i) : bisect_left(gaps, j - 1)]
            ]
            head = [(lo, times[i])] if times[i] - lo > limit else []
            tail = [(times[j - 1], hi)] if hi - times[j - 1] > limit else []
            silences = (*head, *inner, *tail)
        beats = bisect_right(self.heartbeats, hi) - bisect_left(self.heartbeats, lo)
        return Coverage(lo, hi, j - i, beats, silences)

    def reads_in(self, lo: int, hi: int) -> list[Read]:
        return self.reads[bisect_left(self.read_times, lo) : bisect_right(self.read_times, hi)]

    def integrity_devices(self, lo: int, hi: int) -> set[str]:
        return {
            dev for dev, spans in self.holes.items() if any(a <= hi and b >= lo for a, b in spans)
        }


@dataclass(slots=True)
class Result:
    first: date
    last: date
    rows: list[Row]
    offline_lessons: dict[str, int] = field(default_factory=dict)  # center -> lessons offline


def reconcile(
    first: date,
    last: date,
    *,
    schedule: Sequence[ScheduleEntry],
    members: Iterable[Member],
    confirmations: Iterable[Confirmation],
    load_center: Callable[[str], CenterInput],
    settings: ReconcileSettings,
    zone: ZoneInfo,
    centers: Iterable[str] | None = None,
) -> Result:
    """Reconcile every lesson and confirmation from ``first`` to ``last`` (inclusive).

    ``centers`` limits the run; ``load_center`` is called once per center, in
    sorted order, so a database loader holds one center in memory at a time.
    """
    wanted = set(centers) if centers is not None else None
    group_center = {e.group_id: e.center_id for e in schedule}
    by_group: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for m in members:
        group_center.setdefault(m.group_id, m.center_id)
        for uid in m.badges:
            by_group[m.group_id][uid].append(m.child_id)
    confirmed: dict[tuple[str, str, date], Confirmation] = {}
    for c in confirmations:
        if first <= c.date <= last and c.group_id in group_center:
            confirmed[(c.child_id, c.group_id, c.date)] = c
    all_lessons = lessons(schedule, first, last, zone)
    lessons_by_center: dict[str, list[Lesson]] = defaultdict(list)
    for lesson in all_lessons:
        lessons_by_center[lesson.center_id].append(lesson)
    conf_by_center: dict[str, list[Confirmation]] = defaultdict(list)
    for c in confirmed.values():
        conf_by_center[group_center[c.group_id]].append(c)
    center_ids = sorted(set(lessons_by_center) | set(conf_by_center))
    if wanted is not None:
        center_ids = [c for c in center_ids if c in wanted]
    result = Result(first, last, [])
    schedule_by_center: dict[str, list[ScheduleEntry]] = defaultdict(list)
    for e in schedule:
        schedule_by_center[e.center_id].append(e)
    for center_id in center_ids:
        center = _Center(load_center(center_id), settings)
        offline = _reconcile_center(
            center,
            center_id,
            lessons_by_center.get(center_id, []),
            conf_by_center.get(center_id, []),
            confirmed,
            by_group,
            schedule_by_center.get(center_id, []),
            settings,
            result.rows,
        )
        result.offline_lessons[center_id] = offline
    return result


def _reconcile_center(
    center: _Center,
    center_id: str,
    center_lessons: list[Lesson],
    center_confirmations: list[Confirmation],
    confirmed: Mapping[tuple[str, str, date], Confirmation],
    by_group: Mapping[str, Mapping[str, list[str]]],
    schedule: Sequence[ScheduleEntry],
    settings: ReconcileSettings,
    rows: list[Row],
) -> int:
    held: set[tuple[str, date]] = set()
    offline_lessons = 0
    expected: dict[tuple[str, date], list[str]] = defaultdict(list)
    for c in center_confirmations:
        expected[(c.group_id, c.date)].append(c.child_id)
    margin = settings.margin_s * 1000
    for lesson in center_lessons:
        held.add((lesson.group_id, lesson.date))
        lo, hi = lesson.start_ms - margin, lesson.end_ms
        uids = by_group.get(lesson.group_id, {})
        presence: dict[str, list[Read]] = defaultdict(list)
        for read in center.reads_in(lo, hi):
            for child in uids.get(read.uid, ()):
                presence[child].append(read)
        coverage = center.coverage(lo, hi)
        offline_lessons += coverage.offline
        children = set(presence)
        children.update(expected.get((lesson.group_id, lesson.date), ()))
        if not children:
            continue
        tainted = center.integrity_devices(lo, hi)
        for child in sorted(children):
            conf = confirmed.get((child, lesson.group_id, lesson.date))
            reads = presence.get(child, [])
            rows.append(_row(center, child, lesson, conf, reads, tainted, coverage))
    orphans = [c for c in center_confirmations if (c.group_id, c.date) not in held]
    for c in sorted(orphans, key=lambda c: (c.group_id, c.date, c.child_id)):
        rows.append(
            Row(
                c.child_id,
                c.group_id,
                center_id,
                c.date,
                CONFIRMED_WITHOUT_PRESENCE,
                (NO_LESSON_SCHEDULED,),
                _price(schedule, c.group_id, c.date),
                None,
                confirmation=c,
            )
        )
    return offline_lessons


def _row(
    center: _Center,
    child: str,
    lesson: Lesson,
    conf: Confirmation | None,
    reads: list[Read],
    tainted: set[str],
    coverage: Coverage,
) -> Row:
    evidence = tuple(
        (r, ordered(r.reasons | ({CHAIN_INTEGRITY} if r.device_id in tainted else set())))
        for r in reads
    )
    clean = any(not reasons for _, reasons in evidence)
    union = () if clean else ordered(x for _, reasons in evidence for x in reasons)
    if conf is None:
        status = PRESENT_NOT_CONFIRMED
    elif evidence:
        status = VERIFIED if clean else SUSPECT
    elif coverage.offline:
        status = CONFIRMED_DEVICE_OFFLINE
    else:
        status = CONFIRMED_WITHOUT_PRESENCE
    doors: dict[tuple[str, str, int], DoorEvent] = {}
    for r in reads:
        for d in center.doors_near(r):
            doors[(d.device_id, d.sensor, d.seq)] = d
    return Row(
        child,
        lesson.group_id,
        lesson.center_id,
        lesson.date,
        status,
        union,
        lesson.price_kzt,
        lesson,
        evidence,
        tuple(sorted(doors.values(), key=lambda d: d.time_ms)),
        coverage,
        conf,
    )


def _price(schedule: Sequence[ScheduleEntry], group_id: str, day: date) -> int:
    """The group's price on a day without a lesson: the entry valid then, else the latest."""
    entries = [e for e in schedule if e.group_id == group_id]  # only the center's entries
    valid = [
        e
        for e in entries
        if (e.valid_from is None or e.valid_from <= day)
        and (e.valid_to is None or day <= e.valid_to)
    ]
    pick = valid or entries
    return max((e.price_kzt for e in pick), default=0)
