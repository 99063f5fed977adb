"""The risk queue's scoring (portal/reconcile/risk.py) on hand-made reconciliation results."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, time

import pytest

from portal.reconcile.engine import Result, Row
from portal.reconcile.index import Read
from portal.reconcile.lessons import Lesson, ScheduleEntry, lessons
from portal.reconcile.model import Confirmation, Member
from portal.reconcile.risk import (
    FEATURES,
    RiskEntry,
    RiskSettings,
    SpotCheck,
    iso_week,
    risk_queue,
)
from portal.reconcile.rules import CONFIRMED_DEVICE_OFFLINE, PRESENT_NOT_CONFIRMED, VERIFIED

from .support import ZONE

FIRST, LAST = date(2024, 6, 3), date(2024, 6, 30)  # four ISO weeks, Monday to Sunday
S, MIN = 1000, 60_000


@dataclass
class City:
    """Rows, members, lessons and reads of hand-made centers (one group each)."""

    rows: list[Row] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)
    lessons: list[Lesson] = field(default_factory=list)
    reads: dict[str, list[Read]] = field(default_factory=dict)
    seq: int = 0

    def read(self, center: str, uid: str, at: int) -> Read:
        self.seq += 1
        r = Read(f"dev-{center}", self.seq, "main", "mfrc522", uid, at, at, True)
        self.reads.setdefault(center, []).append(r)
        return r

    def center(
        self,
        center: str,
        kids: int,
        attend: float,
        rng: random.Random,
        *,
        claim: float = 0.0,
        weeks: tuple[str, ...] | None = None,
        offline: float = 0.0,
    ) -> None:
        """Honest children arrive in clusters of 1-3 and tap out; with ``claim``, absent children
        are claimed by a lone tap and no departure (patient fraud), in ``weeks`` (all if None)."""
        group = f"{center}-G1"
        entries = [ScheduleEntry(group, center, d, time(15), time(16, 30), 3000) for d in (1, 3, 5)]
        held = lessons(entries, FIRST, LAST, ZONE)
        self.lessons += held
        children = [f"{center}-K{k}" for k in range(kids)]
        self.members += [Member(c, group, center, frozenset({f"U{c}"})) for c in children]
        for lesson in held:
            present = [c for c in children if rng.random() < attend]
            fraud = weeks is None or iso_week(lesson.date) in weeks
            claimed = [c for c in children if c not in present and fraud and rng.random() < claim]
            at = lesson.start_ms - 20 * MIN
            size = 0
            for k, child in enumerate(present):
                if size == 0:  # a new cluster: 1 (60 %), 2 (25 %) or 3 (15 %) children
                    at += 90 * S
                    size = rng.choices((1, 2, 3), (60, 25, 15))[0]
                at += 2 * S
                size -= 1
                arrival = self.read(center, f"U{child}", at)
                self.read(center, f"U{child}", lesson.end_ms + 2 * MIN + k * 2 * S)
                status = CONFIRMED_DEVICE_OFFLINE if rng.random() < offline else VERIFIED
                reads = () if status == CONFIRMED_DEVICE_OFFLINE else ((arrival, ()),)
                self.rows.append(_row(child, lesson, status, reads))
            for k, child in enumerate(claimed):
                arrival = self.read(center, f"U{child}", lesson.start_ms + (2 + k) * MIN)
                self.rows.append(_row(child, lesson, VERIFIED, ((arrival, ()),)))

    def result(self) -> Result:
        return Result(FIRST, LAST, self.rows)

    def queue(
        self, spotchecks: Sequence[SpotCheck] = (), settings: RiskSettings | None = None
    ) -> list[RiskEntry]:
        return risk_queue(
            self.result(),
            members=self.members,
            lessons=self.lessons,
            reads=self.reads,
            spotchecks=spotchecks,
            settings=settings,
        )


def _row(
    child: str, lesson: Lesson, status: str, reads: tuple[tuple[Read, tuple[str, ...]], ...]
) -> Row:
    conf = Confirmation(child, lesson.group_id, lesson.date, f"{lesson.date} 20:00", "parent")
    return Row(
        child,
        lesson.group_id,
        lesson.center_id,
        lesson.date,
        status,
        (),
        lesson.price_kzt,
        lesson,
        reads,
        confirmation=conf,
    )


def honest_city(seed: int = 1, centers: int = 12) -> City:
    rng = random.Random(seed)
    city = City()
    for n in range(centers):
        city.center(f"H{n:02d}", 14, 0.86, rng)
    return city


def test_a_patient_center_outranks_every_honest_one() -> None:
    city = honest_city()
    city.center("P01", 14, 0.86, random.Random(5), claim=0.8)
    queue = city.queue()
    assert len(queue) == 13 * 4  # one entry per center and ISO week
    assert {e.center_id for e in queue[:4]} == {"P01"}
    top = queue[0]
    names = {r.name for r in top.reasons}
    assert {"attendance_share", "no_departure_share", "lone_arrival_share"} <= names
    att = next(r for r in top.reasons if r.name == "attendance_share")
    assert att.figure > 0.95 and 0.8 < att.city < 0.9 and att.n == 42
    assert att.text.startswith(f"attendance_share {att.figure:.2f} vs city {att.city:.2f}")
    # The money: every verified row of the week is paid on the device's word.
    assert top.kzt == 3000 * sum(
        1
        for r in city.rows
        if r.center_id == "P01" and iso_week(r.date) == top.week and r.status == VERIFIED
    )
    assert top.kzt_excess > 0


def test_each_patient_signal_alone_raises_the_score() -> None:
    """Without departures data, or with the fraud's taps in pairs, the score drops."""
    city = honest_city()
    city.center("P01", 14, 0.86, random.Random(5), claim=0.8)
    full = {(e.center_id, e.week): e.score for e in city.queue()}
    blind = risk_queue(city.result(), members=city.members, lessons=city.lessons)
    no_departures = {(e.center_id, e.week): e for e in blind}
    week = iso_week(FIRST)
    assert no_departures[("P01", week)].score < full[("P01", week)]
    assert "no_departure_share" not in {f.name for f in no_departures[("P01", week)].features}


def test_a_small_honest_center_at_full_attendance_is_not_ranked_top() -> None:
    """Three children at 100 % is chance, not proof; fourteen at 100 % is not."""
    city = honest_city(seed=2)
    city.center("S01", 3, 1.0, random.Random(3))
    queue = city.queue()
    small = [e for e in queue if e.center_id == "S01"]
    assert queue[0].center_id != "S01"
    assert max(e.score for e in small) < 2.0
    rank = min(k for k, e in enumerate(queue) if e.center_id == "S01")
    assert rank >= len(queue) // 10  # not in the top 10 %

    big = honest_city(seed=2)
    big.center("B01", 14, 1.0, random.Random(3))
    assert big.queue()[0].center_id == "B01"  # the same share with more children does rank


def test_unverifiable_lessons_rank_an_unplugged_center() -> None:
    city = honest_city(seed=4)
    city.center("U01", 14, 0.86, random.Random(6), offline=0.3)
    top = city.queue()[0]
    assert top.center_id == "U01"
    assert top.reasons[0].name == "unverifiable_share"


def test_the_order_is_stable_and_ties_are_broken_by_kzt_center_week() -> None:
    city = honest_city(seed=7)
    first = city.queue()
    again = city.queue()
    assert [(e.center_id, e.week, e.score) for e in first] == [
        (e.center_id, e.week, e.score) for e in again
    ]
    keys = [(-e.score, -e.kzt, e.center_id, e.week) for e in first]
    assert keys == sorted(keys)


def test_spot_checks_show_next_to_their_center_week_with_the_device_count() -> None:
    city = honest_city(seed=8, centers=6)
    day = date(2024, 6, 12)  # a Wednesday: a lesson day
    check = SpotCheck("H03", day, 5, note="half the room empty", by="Inspector A")
    other = SpotCheck("H03", date(2024, 7, 3), 9)  # outside the period: not shown
    queue = city.queue(spotchecks=[check, other])
    entry = next(e for e in queue if (e.center_id, e.week) == ("H03", iso_week(day)))
    assert len(entry.spotchecks) == 1
    seen = entry.spotchecks[0]
    recorded = {r.child_id for r in city.rows if r.center_id == "H03" and r.date == day and r.reads}
    assert seen.check == check and seen.recorded == len(recorded) > 5
    assert all(not e.spotchecks for e in queue if e is not entry)


def test_rows_not_confirmed_are_not_attendance() -> None:
    city = City()
    rng = random.Random(9)
    for n in range(6):
        city.center(f"H{n}", 14, 0.86, rng)
    lesson = city.lessons[0]
    extra = [
        _row(
            f"X{k}",
            lesson,
            PRESENT_NOT_CONFIRMED,
            ((city.read("H0", f"UX{k}", lesson.start_ms), ()),),
        )
        for k in range(10)
    ]
    before = {(e.center_id, e.week): e for e in city.queue()}
    city.rows += extra
    after = {(e.center_id, e.week): e for e in city.queue()}
    key = ("H0", iso_week(lesson.date))
    assert after[key].rows == before[key].rows
    att = [f for f in after[key].features if f.name == "attendance_share"]
    assert att == [f for f in before[key].features if f.name == "attendance_share"]


@pytest.mark.parametrize("name", FEATURES)
def test_every_feature_is_documented(name: str) -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "reconciliation.md").read_text()
    section = doc[doc.index("## Risk queue") :]
    assert f"`{name}`" in section


def test_one_outage_is_one_event_not_a_row_per_child() -> None:
    """A lesson's rows go offline together: the share counts lessons, so one outage in a
    week gives at most a point, and several give more."""
    city = honest_city(seed=10)
    city.center("O01", 14, 0.86, random.Random(11))
    first, second = (
        x for x in city.lessons if x.center_id == "O01" and x.date < FIRST.replace(day=6)
    )
    for lesson, keep in ((first, True), (second, False)):
        for k, r in enumerate(city.rows):
            if (r.group_id, r.date) == (lesson.group_id, lesson.date) and (keep or k % 2):
                city.rows[k] = _row(r.child_id, lesson, CONFIRMED_DEVICE_OFFLINE, ())
    week = {e.center_id: e for e in city.queue() if e.week == iso_week(FIRST)}
    unverifiable = next(f for f in week["O01"].features if f.name == "unverifiable_share")
    assert (unverifiable.k, unverifiable.n) == (2, 3)
    assert unverifiable.points > 1.5  # two lessons of three: a pattern

    city = honest_city(seed=10)
    city.center("O01", 14, 0.86, random.Random(11))
    for k, r in enumerate(city.rows):
        if (r.group_id, r.date) == (first.group_id, first.date):
            city.rows[k] = _row(r.child_id, first, CONFIRMED_DEVICE_OFFLINE, ())
    one = next(e for e in city.queue() if (e.center_id, e.week) == ("O01", iso_week(FIRST)))
    assert one.score < 1.0


def test_a_one_week_period_counts_attendance_once() -> None:
    city = honest_city(seed=12)
    city.center("P01", 14, 0.86, random.Random(5), claim=0.8)
    week_end = date(2024, 6, 9)
    one = Result(FIRST, week_end, [r for r in city.rows if r.date <= week_end])
    (entry, *_) = risk_queue(one, members=city.members, lessons=city.lessons, reads=city.reads)
    assert entry.center_id == "P01" and {e.week for e in [entry]} == {iso_week(FIRST)}
    names = [f.name for f in entry.features]
    assert "attendance_share" in names and "attendance_period" not in names
