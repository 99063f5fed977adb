"""The risk queue: centers and ISO weeks ranked for unannounced spot checks (pure, no I/O).

Some fraud leaves no per-lesson proof: collected cards tapped one by one, each
with its own door opening, look like children arriving. What such a club cannot
hide is the pattern over a week: attendance near 100 % where the city sees
about 85 %, arrivals that never tap out, every arrival alone at the door. For
each (center, ISO week) :func:`risk_queue` computes a few shares, each compared
with the city's base rate, and adds up their standardised excesses
(docs/reconciliation.md, "Risk queue"):

    z = (k - n*p) / sqrt(n*p*(1-p) + (n*tau)**2) * n / (n + 20)   (n + 2 for lessons)
    points = min(CAP, max(0, z - 1))
    score = sum of the points of every feature

``k`` of ``n`` is the center-week's count (say, confirmed child-lessons of
enrolled child-lessons), ``p`` the city's share over all center-weeks, ``tau``
the city's spread between centers beyond chance (0 when the centers differ by
chance alone). A small center's ``n`` is small, so chance alone explains its
100 %: its z stays small, and the factor n / (n + 20) shrinks it further (the
normal approximation overstates rare shares of few cases). One standard
deviation is ordinary variation; above it each counts one point, at most
``CAP`` (4) per feature, so no single feature ranks a center alone. Every
figure is a count an auditor can redo in a spreadsheet from the reconciliation
CSV.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from statistics import median

from portal.reconcile.engine import Result, Row
from portal.reconcile.index import Read
from portal.reconcile.lessons import Lesson
from portal.reconcile.model import Member
from portal.reconcile.rules import (
    AT_RISK,
    PRESENT_NOT_CONFIRMED,
    PRESENT_UNPROVEN,
    UNVERIFIABLE,
    VERIFIED,
)

MIN_MS = 60_000
# Paid on the device's word (verified) or possibly paid later (unverifiable): what a
# spot check protects. Rows at risk are already withheld by the per-lesson report.
PAID = frozenset({VERIFIED}) | UNVERIFIABLE


@dataclass(frozen=True, slots=True)
class RiskSettings:
    """The queue's few constants (docs/reconciliation.md, "Risk queue")."""

    cap: float = 4.0  # points one feature can give at most
    dead_zone: float = 1.0  # standard deviations that count as ordinary variation
    # A rare feature's city rate is taken as at least this (one shared signer in a
    # city with none is not 30 standard deviations).
    rate_floor: float = 0.01
    # The same for the features counted in lessons: an outage now and then is ordinary.
    lesson_rate_floor: float = 0.05
    # A departure: the child's badge read again at the center at least this long after
    # the arrival and at most ``departure_after_end_ms`` after the lesson's end.
    min_stay_ms: int = 20 * MIN_MS
    departure_after_end_ms: int = 15 * MIN_MS
    # An arrival is alone when no other badge is read at its device this close to it.
    alone_ms: int = 30_000
    # Center-weeks with at least this many cases estimate the city's spread (tau).
    spread_min_n: int = 20
    # A feature of n cases counts n / (n + small_n) of its z: a center with few children
    # cannot rank on a share that chance gives it (9 cases count 31 %, 120 count 86 %).
    small_n: int = 20
    # The same for the features counted in lessons (a week has about ten per center).
    small_lessons: int = 2
    # The features that count (all by default; the benchmark measures subsets).
    features: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SpotCheck:
    """An inspector's unannounced count of children present at a center on a date."""

    center_id: str
    date: date
    present: int
    note: str = ""
    by: str = ""
    at_ms: int = 0  # when it was recorded


@dataclass(frozen=True, slots=True)
class RiskReason:
    """One feature of a center-week: ``k`` of ``n`` (``figure``) against the city's ``city``."""

    name: str
    figure: float
    city: float
    k: int
    n: int
    z: float
    points: float

    @property
    def text(self) -> str:
        return f"{self.name} {self.figure:.2f} vs city {self.city:.2f} ({self.k}/{self.n})"


@dataclass(frozen=True, slots=True)
class SpotCheckSeen:
    """A spot check next to what the device recorded and parents confirmed that day."""

    check: SpotCheck
    recorded: int  # children with a read of a lesson at the center that day
    confirmed: int  # children confirmed for a lesson at the center that day


@dataclass(frozen=True, slots=True)
class RiskEntry:
    center_id: str
    week: str  # ISO week, YYYY-Www
    score: float
    reasons: tuple[RiskReason, ...]  # features with points, most points first
    kzt: int  # prices of the week's paid rows (verified or unverifiable)
    kzt_excess: int  # confirmed child-lessons above the city's attendance, times the price
    rows: int  # confirmed rows of the week
    spotchecks: tuple[SpotCheckSeen, ...] = ()
    features: tuple[RiskReason, ...] = ()  # every feature computed, in FEATURES order


# The features, in the order they are listed (docs/reconciliation.md, "Risk queue").
FEATURES = (
    "attendance_share",
    "attendance_period",
    "no_departure_share",
    "lone_arrival_share",
    "unverifiable_share",
    "suspect_share",
    "shared_signer_share",
    "late_schedule_share",
)


# Counted in lessons, not rows: one outage or one office decision touches every row of a
# lesson at once, and twelve rows of one lesson are one event, not twelve.
LESSON_FEATURES = frozenset(
    {"unverifiable_share", "suspect_share", "shared_signer_share", "late_schedule_share"}
)


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(slots=True)
class _Counts:
    """Per center-week: (k, n) of every feature, and the money."""

    kn: dict[str, list[int]] = field(default_factory=lambda: {f: [0, 0] for f in FEATURES})
    kzt: int = 0
    prices: list[int] = field(default_factory=list)
    rows: int = 0
    # (group, date) -> the lesson features any of its confirmed rows has
    lessons: dict[tuple[str, date], set[str]] = field(default_factory=dict)

    def add(self, name: str, hit: bool) -> None:
        pair = self.kn[name]
        pair[0] += hit
        pair[1] += 1


def risk_queue(
    result: Result,
    *,
    members: Iterable[Member],
    lessons: Iterable[Lesson] | None = None,
    reads: Mapping[str, Sequence[Read]] | None = None,
    spotchecks: Iterable[SpotCheck] = (),
    settings: RiskSettings | None = None,
) -> list[RiskEntry]:
    """One entry per (center, ISO week) of ``result``, highest score first.

    ``members``: the roster (enrolment per group). ``lessons``: the period's
    lessons (a lesson nobody attended still counts in the attendance
    denominator); by default the lessons of the rows. ``reads``: every badge read
    of each center in the period, as the engine placed them
    (:func:`portal.reconcile.risk_store.run_for_risk` collects them); without them
    departures are not looked for and aloneness is judged on the rows' reads
    only. Ties: higher KZT, then center id, then week.
    """
    s = settings or RiskSettings()
    enrolled: dict[str, set[str]] = defaultdict(set)
    for m in members:
        enrolled[m.group_id].add(m.child_id)
    rows = [r for r in result.rows if result.first <= r.date <= result.last]
    if lessons is None:
        seen: dict[tuple[str, date], Lesson] = {}
        for r in rows:
            if r.lesson is not None:
                seen.setdefault((r.lesson.group_id, r.lesson.date), r.lesson)
        held = list(seen.values())
    else:
        held = [x for x in lessons if result.first <= x.date <= result.last]
    by_center_reads = _reads_by_center(rows, reads)
    weeks: dict[tuple[str, str], _Counts] = defaultdict(_Counts)
    period: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # center -> attendance k, n
    for lesson in held:
        n = len(enrolled.get(lesson.group_id, ()))
        weeks[(lesson.center_id, iso_week(lesson.date))].kn["attendance_share"][1] += n
        period[lesson.center_id][1] += n
    for r in rows:
        acc = weeks[(r.center_id, iso_week(r.date))]
        if r.status == PRESENT_NOT_CONFIRMED:
            continue
        acc.rows += 1
        if r.status in PAID:
            acc.kzt += r.price_kzt
        if r.lesson is not None:
            acc.kn["attendance_share"][0] += 1
            acc.prices.append(r.price_kzt)
            period[r.center_id][0] += 1
        flags = acc.lessons.setdefault((r.group_id, r.date), set())
        if r.status in UNVERIFIABLE:
            flags.add("unverifiable_share")
        if r.status in AT_RISK:
            flags.add("suspect_share")
        if "shared_signer" in r.reasons:
            flags.add("shared_signer_share")
        if "schedule_changed_late" in r.reasons:
            flags.add("late_schedule_share")
        if r.status in (VERIFIED, PRESENT_UNPROVEN) and r.reads and r.lesson is not None:
            center_reads = by_center_reads.get(r.center_id)
            first = min(r.reads, key=lambda x: x[0].time_ms)[0]
            if reads is not None and center_reads is not None:
                acc.add("no_departure_share", not _departed(r, first, center_reads, s))
            if center_reads is not None:
                acc.add("lone_arrival_share", _alone(first, center_reads, s))
    checks = _spotchecks(rows, [c for c in spotchecks if result.first <= c.date <= result.last])
    for key in checks:
        weeks[key].rows += 0  # a spot check shows even in a week without rows
    for (center, _week), acc in weeks.items():
        acc.kn["attendance_period"] = list(period.get(center, [0, 0]))
        for name in LESSON_FEATURES:
            acc.kn[name] = [sum(name in f for f in acc.lessons.values()), len(acc.lessons)]
    rates, spreads = _city(weeks, s)
    out = []
    for (center, week), acc in weeks.items():
        features = []
        for name in FEATURES:
            k, n = acc.kn[name]
            if n == 0 or (s.features and name not in s.features):
                continue
            if name == "attendance_period" and n == acc.kn["attendance_share"][1]:
                continue  # the period is this week: the same figure must not count twice
            p = rates[name]
            small = s.small_lessons if name in LESSON_FEATURES else s.small_n
            z = _z(k, n, p, spreads[name]) * n / (n + small)
            points = min(s.cap, max(0.0, z - s.dead_zone))
            features.append(RiskReason(name, k / n, rates[name], k, n, z, round(points, 4)))
        score = round(sum(f.points for f in features), 4)
        reasons = sorted(
            (f for f in features if f.points > 0), key=lambda f: (-f.points, FEATURES.index(f.name))
        )
        k, n = acc.kn["attendance_share"]
        excess = max(0.0, k - n * rates["attendance_share"])
        mean_price = sum(acc.prices) / len(acc.prices) if acc.prices else 0.0
        out.append(
            RiskEntry(
                center,
                week,
                score,
                tuple(reasons),
                acc.kzt,
                round(excess * mean_price),
                acc.rows,
                tuple(checks.get((center, week), ())),
                tuple(features),
            )
        )
    out.sort(key=lambda e: (-e.score, -e.kzt, e.center_id, e.week))
    return out


def _reads_by_center(
    rows: Sequence[Row], reads: Mapping[str, Sequence[Read]] | None
) -> dict[str, _Reads]:
    if reads is not None:
        return {c: _Reads(rs) for c, rs in reads.items()}
    # Without the centers' reads, the rows' own reads (other groups' children included).
    found: dict[str, dict[tuple[str, int], Read]] = defaultdict(dict)
    for r in rows:
        for read, _ in r.reads:
            found[r.center_id][(read.device_id, read.seq)] = read
    return {c: _Reads(list(rs.values())) for c, rs in found.items()}


class _Reads:
    """A center's reads sorted by time, per device and per badge (two bisects a question)."""

    def __init__(self, reads: Iterable[Read]) -> None:
        device: dict[str, list[int]] = defaultdict(list)
        badge: dict[str, list[int]] = defaultdict(list)
        for r in reads:
            device[r.device_id].append(r.time_ms)
            badge[r.uid].append(r.time_ms)
        self.device = {k: sorted(v) for k, v in device.items()}
        self.badge = {k: sorted(v) for k, v in badge.items()}


def _departed(row: Row, first: Read, reads: _Reads, s: RiskSettings) -> bool:
    """The child's badge was read again between a stay and the end of the lesson (+ margin)."""
    assert row.lesson is not None
    lo = first.time_ms + s.min_stay_ms
    hi = row.lesson.end_ms + s.departure_after_end_ms
    for uid in {read.uid for read, _ in row.reads}:
        times = reads.badge.get(uid, [])
        if bisect_right(times, hi) > bisect_left(times, lo):
            return True
    return False


def _alone(first: Read, reads: _Reads, s: RiskSettings) -> bool:
    """No other read at the arrival's device within ``alone_ms`` before or after it."""
    times = reads.device.get(first.device_id, [])
    t = first.time_ms
    return bisect_right(times, t + s.alone_ms) - bisect_left(times, t - s.alone_ms) <= 1


def _z(k: int, n: int, p: float, tau: float) -> float:
    """Standard deviations of ``k`` of ``n`` above ``n*p``: chance, plus the city's spread."""
    var = n * p * (1 - p) + (n * tau) ** 2
    return (k - n * p) / math.sqrt(var) if var > 0 else 0.0


def _city(
    weeks: Mapping[tuple[str, str], _Counts], s: RiskSettings
) -> tuple[dict[str, float], dict[str, float]]:
    """The city's rate of every feature (pooled over center-weeks) and its spread (tau).

    tau: the spread of the center-weeks' shares (1.4826 x median absolute deviation, so
    that a few fraudulent centers do not widen it) minus what chance explains (the
    median of p(1-p)/n), over center-weeks with at least ``spread_min_n`` cases.
    """
    rates, spreads = {}, {}
    for name in FEATURES:
        k = sum(acc.kn[name][0] for acc in weeks.values())
        n = sum(acc.kn[name][1] for acc in weeks.values())
        p = k / n if n else 0.0
        if name in LESSON_FEATURES:
            p = max(p, s.lesson_rate_floor)
        elif name not in ("attendance_share", "attendance_period", "lone_arrival_share"):
            p = max(p, s.rate_floor)  # rare by nature: one case must not count for 30
        p = min(p, 1 - s.rate_floor)
        rates[name] = p
        big = [acc.kn[name] for acc in weeks.values() if acc.kn[name][1] >= s.spread_min_n]
        tau = 0.0
        if len(big) >= 5:
            shares = [kk / nn for kk, nn in big]
            mid = median(shares)
            robust = 1.4826 * median(abs(x - mid) for x in shares)
            chance = median(p * (1 - p) / nn for _, nn in big)
            tau = math.sqrt(max(0.0, robust**2 - chance))
        spreads[name] = tau
    return rates, spreads


def _spotchecks(
    rows: Sequence[Row], checks: Iterable[SpotCheck]
) -> dict[tuple[str, str], list[SpotCheckSeen]]:
    wanted = sorted(checks, key=lambda c: (c.center_id, c.date, c.at_ms))
    if not wanted:
        return {}
    days = {(c.center_id, c.date) for c in wanted}
    read: dict[tuple[str, date], set[str]] = defaultdict(set)
    confirmed: dict[tuple[str, date], set[str]] = defaultdict(set)
    for r in rows:
        key = (r.center_id, r.date)
        if key not in days:
            continue
        if r.reads and r.lesson is not None:
            read[key].add(r.child_id)
        if r.status != PRESENT_NOT_CONFIRMED and r.lesson is not None:
            confirmed[key].add(r.child_id)
    out: dict[tuple[str, str], list[SpotCheckSeen]] = defaultdict(list)
    for c in wanted:
        key = (c.center_id, c.date)
        out[(c.center_id, iso_week(c.date))].append(
            SpotCheckSeen(c, len(read.get(key, ())), len(confirmed.get(key, ())))
        )
    return out


__all__ = [
    "FEATURES",
    "PAID",
    "RiskEntry",
    "RiskReason",
    "RiskSettings",
    "SpotCheck",
    "SpotCheckSeen",
    "iso_week",
    "risk_queue",
]
