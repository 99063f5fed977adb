"""Reconciliation of lessons against confirmations, one center at a time (docs/reconciliation.md).

The loop: the schedule gives the lessons (:mod:`.lessons`); each center's logs
become a :class:`~portal.reconcile.index.CenterIndex` (records in trusted time,
sorted per device); every read gets its facts from the index and the reasons of
:data:`~portal.reconcile.rules.REASONS` that fire on them, once per center; then
each lesson's window picks its reads, adds the window reasons, and every child
with a read or a confirmation gets a row whose status
:func:`~portal.reconcile.rules.status` decides. After the last center one
city-wide pass (:mod:`.presence`) marks a child present in two places at once.
No I/O: the loader hands in one center at a time.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from zoneinfo import ZoneInfo

from portal.reconcile import rules
from portal.reconcile.cards import CardBook, check_reads, order_counters, rejudge_replays
from portal.reconcile.index import (
    CARD_AUTHENTIC,
    HELD,
    OPENED,
    SHUT,
    CenterIndex,
    Coverage,
    DoorEvent,
    Read,
)
from portal.reconcile.lessons import Lesson, ScheduleApproval, ScheduleEntry, instant_ms, lessons
from portal.reconcile.model import (
    Confirmation,
    DeviceLog,
    IntegrityEvent,
    Member,
    ReconcileSettings,
    signer_key,
)
from portal.reconcile.presence import one_place
from portal.reconcile.rules import ReadFacts, RowFacts, WindowFacts

# Open ends of a badge's validity (Member.from_ms / to_ms None).
_NEVER, _EVER = -(2**63), 2**63
# A child's badges in one group: uid -> (child, valid from, valid until) in read time.
Badges = Mapping[str, list[tuple[str, int, int]]]

# The checks of the rules table by the facts they read, as (name, check) pairs.
_READ_CHECKS = tuple((r.name, r.check) for r in rules.READ_REASONS)
_WINDOW_CHECKS = tuple((r.name, r.check) for r in rules.WINDOW_REASONS)
_ROW_CHECKS = tuple((r.name, r.check) for r in rules.ROW_REASONS)


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
    facts: RowFacts | None = None  # what the status was derived from (None: no lesson)


@dataclass(slots=True)
class CenterInput:
    """One center's device logs and integrity events (what the loader reads)."""

    center_id: str
    logs: list[DeviceLog] = field(default_factory=list)
    events: list[IntegrityEvent] = field(default_factory=list)


@dataclass(slots=True)
class Result:
    first: date
    last: date
    rows: list[Row]
    offline_lessons: dict[str, int] = field(default_factory=dict)  # center -> lessons offline
    # SUN reads whose counters were accepted: (uid, device_id, seq, counter, time_ms).
    card_accepted: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    # Display names for the exports (the store fills them; ids stay the keys).
    child_names: dict[str, str] = field(default_factory=dict)
    center_names: dict[str, str] = field(default_factory=dict)


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
    approvals: Iterable[ScheduleApproval] = (),
    observe: Callable[[str, CenterIndex], None] | None = None,
    cards: CardBook | None = None,
) -> Result:
    """Reconcile every lesson and confirmation from ``first`` to ``last`` (inclusive).

    ``centers`` limits the run; ``load_center`` is called once per center, in
    sorted order, so a database loader holds one center in memory at a time.
    ``schedule`` may hold every stored version of the schedule and ``approvals``
    the operators' approvals of late changes (:func:`~portal.reconcile.lessons.lessons`).
    ``observe`` is shown each center's index once its reads are judged (the risk
    queue keeps the reads to look for departures, :mod:`portal.reconcile.risk`).
    ``cards`` is the card registry with its keys: without it no read is checked by
    its card (:mod:`portal.reconcile.cards`).
    """
    wanted = set(centers) if centers is not None else None
    group_center = {e.group_id: e.center_id for e in schedule}
    by_group: dict[str, dict[str, list[tuple[str, int, int]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for m in members:
        group_center.setdefault(m.group_id, m.center_id)
        lo = _NEVER if m.from_ms is None else m.from_ms
        hi = _EVER if m.to_ms is None else m.to_ms
        for uid in m.badges:
            by_group[m.group_id][uid].append((m.child_id, lo, hi))
    confirmed: dict[tuple[str, str, date], Confirmation] = {}
    children_of: dict[str, set[str]] = defaultdict(set)
    for c in confirmations:
        if first <= c.date <= last and c.group_id in group_center:
            if c.confirmed_ms is None and c.confirmed_at:
                c = replace(c, confirmed_ms=instant_ms(c.confirmed_at, zone))
            confirmed[(c.child_id, c.group_id, c.date)] = c
            children_of[signer_key(c.signer)].add(c.child_id)
    # Signers who confirmed for more children in the period than a family has.
    shared = frozenset(
        s
        for s, kids in children_of.items()
        if len(kids) > settings.shared_signer_max and s not in settings.shared_signer_allowed
    )
    all_lessons = lessons(schedule, first, last, zone, approvals)
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
        if e.replaced_ms is None:  # the current version of each row
            schedule_by_center[e.center_id].append(e)
    taps: list[tuple[str, int, str]] = []  # uid, time, center of every read
    card_reads: list[tuple[Read, str]] = []  # the SUN reads that check, to order
    for center_id in center_ids:
        inp = load_center(center_id)
        index = CenterIndex(inp.logs, inp.events, settings)
        if cards is not None:
            check_reads(index.reads, cards)
            card_reads.extend(
                [(r, center_id) for r in index.reads if r.card_check == CARD_AUTHENTIC]
            )
        judge_reads(index, settings, cards.require_auth if cards is not None else frozenset())
        # Every read, not only those in a row: a card read where no lesson of its
        # child runs still places the child there (docs/reconciliation.md).
        taps.extend([(r.uid, r.time_ms, center_id) for r in index.reads])
        if observe is not None:
            observe(center_id, index)
        offline = _reconcile_center(
            index,
            center_id,
            lessons_by_center.get(center_id, []),
            conf_by_center.get(center_id, []),
            confirmed,
            by_group,
            schedule_by_center.get(center_id, []),
            settings,
            result.rows,
            shared,
        )
        result.offline_lessons[center_id] = offline
    if cards is not None:  # city-wide: each card's counters in order of time
        result.card_accepted = order_counters(card_reads, cards)
        rejudge_replays(result.rows, settings)
    one_place(result.rows, settings, taps)  # city-wide: a child is in one place at a time
    return result


def read_facts(
    index: CenterIndex, settings: ReconcileSettings, require_card_auth: frozenset[str] = frozenset()
) -> list[ReadFacts]:
    """The facts of every read of the center, in the order of ``index.reads``."""
    reads = index.reads
    fast = _run_badges(index, settings.burst_gap_ms, per_reader=False)
    at_reader = _run_badges(index, settings.burst_gap_ms, per_reader=True)
    slow, paired = _slow_runs(index, settings)
    w = settings.door_window_ms
    boot_of, door_state = index.boot_of, index.door_state
    centers = index.device_center
    out = []
    for read, n, r, m, p in zip(reads, fast, at_reader, slow, paired, strict=True):
        boot = boot_of(read)
        doors = boot.doors if boot is not None else ()
        best = SHUT
        for d in doors:
            best = max(best, door_state(read.device_id, d, read.time_ms - w, read.time_ms + w))
            if best == OPENED:
                break
        out.append(
            ReadFacts(
                read,
                doors,
                best != SHUT,
                n,
                center_id=centers.get(read.device_id, ""),
                door_held_open=best == HELD,
                booted=boot is not None,
                reader_listed=boot is None or boot.lists(read),
                reader_run_badges=r,
                slow_run_badges=m,
                slow_run_paired=p,
                stale_anchor=read.stale_anchor,
                require_card_auth=centers.get(read.device_id, "") in require_card_auth,
            )
        )
    return out


def _run_badges(index: CenterIndex, gap_ms: int, *, per_reader: bool) -> list[int]:
    """For each read, the distinct badges of its run at its device or reader."""
    reads = index.reads
    badges = [1] * len(reads)
    for run in index.runs(gap_ms, per_reader=per_reader):
        if len(run) > 1:
            n = len({reads[k].uid for k in run})
            for k in run:
                badges[k] = n
    return badges


def _slow_runs(index: CenterIndex, s: ReconcileSettings) -> tuple[list[int], list[int]]:
    """For each read, the distinct badges of its slow run at its reader, and how many of
    them are paired (see :attr:`ReadFacts.slow_run_paired`; -1 at a center whose
    children do not tap out)."""
    reads = index.reads
    times: dict[str, list[int]] = defaultdict(list)
    for read in reads:  # index.reads is in time order, so each list is sorted
        times[read.uid].append(read.time_ms)
    lo_gap, hi_gap = s.pair_min_ms, s.pair_max_ms

    def is_paired(read: Read) -> bool:
        ts, t = times[read.uid], read.time_ms
        before = bisect_right(ts, t - lo_gap) - bisect_left(ts, t - hi_gap)
        return before > 0 or bisect_right(ts, t + hi_gap) > bisect_left(ts, t + lo_gap)

    pairs = [is_paired(r) for r in reads]
    counts = sum(pairs) >= s.paired_center_share * len(reads) if reads else False
    badges = [1] * len(reads)
    paired = [int(p) if counts else -1 for p in pairs]
    for run in index.runs(s.burst_slow_gap_ms, per_reader=True):
        if len(run) > 1:
            uids = {reads[k].uid for k in run}
            n_paired = len({reads[k].uid for k in run if pairs[k]}) if counts else -1
            for k in run:
                badges[k] = len(uids)
                paired[k] = n_paired
    return badges, paired


def judge_reads(
    index: CenterIndex, settings: ReconcileSettings, require_card_auth: frozenset[str] = frozenset()
) -> None:
    """Give every read the reasons of the read rules that fire on its facts."""
    checks = _READ_CHECKS
    for facts in read_facts(index, settings, require_card_auth):
        facts.read.reasons = tuple([name for name, check in checks if check(facts, settings)])


def _reconcile_center(
    index: CenterIndex,
    center_id: str,
    center_lessons: list[Lesson],
    center_confirmations: list[Confirmation],
    confirmed: Mapping[tuple[str, str, date], Confirmation],
    by_group: Mapping[str, Badges],
    schedule: Sequence[ScheduleEntry],
    settings: ReconcileSettings,
    rows: list[Row],
    shared: frozenset[str] = frozenset(),
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
        for read in index.reads_in(lo, hi):
            for child, since, until in uids.get(read.uid, ()):
                if since <= read.time_ms < until:  # the badge was the child's then
                    presence[child].append(read)
        coverage = index.coverage(lo, hi)
        offline_lessons += coverage.offline
        children = set(presence)
        children.update(expected.get((lesson.group_id, lesson.date), ()))
        if not children:
            continue
        window = _window_reasons(index, lo, hi, settings)
        for child in sorted(children):
            conf = confirmed.get((child, lesson.group_id, lesson.date))
            reads = presence.get(child, [])
            rows.append(_row(index, child, lesson, conf, reads, window, coverage, settings, shared))
    orphans = [c for c in center_confirmations if (c.group_id, c.date) not in held]
    for c in sorted(orphans, key=lambda c: (c.group_id, c.date, c.child_id)):
        facts = RowFacts(True, False, 0, False, False)  # confirmed, no lesson: no evidence
        facts.shared_signer = signer_key(c.signer) in shared
        reasons = _row_reasons(facts, (), settings)
        rows.append(
            Row(
                c.child_id,
                c.group_id,
                center_id,
                c.date,
                rules.status(facts, reasons),
                reasons,
                _price(schedule, c.group_id, c.date),
                None,
                confirmation=c,
            )
        )
    return offline_lessons


def _row_reasons(
    facts: RowFacts, evidence: tuple[str, ...], settings: ReconcileSettings
) -> tuple[str, ...]:
    fired = [name for name, check in _ROW_CHECKS if check(facts, settings)]
    return rules.ordered([*evidence, *fired]) if fired else evidence


def _row(
    index: CenterIndex,
    child: str,
    lesson: Lesson,
    conf: Confirmation | None,
    reads: list[Read],
    window: Mapping[str, tuple[str, ...]],
    coverage: Coverage,
    settings: ReconcileSettings,
    shared: frozenset[str] = frozenset(),
) -> Row:
    evidence = tuple(
        [
            (
                r,
                rules.ordered([*r.reasons, *window[r.device_id]])
                if r.device_id in window
                else r.reasons,
            )
            for r in reads
        ]
    )
    clean = any(not reasons for _, reasons in evidence)
    union = () if clean else rules.ordered(x for _, reasons in evidence for x in reasons)
    facts = RowFacts(conf is not None, True, len(reads), clean, coverage.offline)
    facts.schedule_changed_late = lesson.changed_late
    facts.implausible_schedule = lesson.end_ms - lesson.start_ms > settings.lesson_max_min * 60_000
    if conf is not None:
        # No time (empty or unreadable) is no proof the parent signed after the lesson.
        facts.confirmed_early = conf.confirmed_ms is None or conf.confirmed_ms < lesson.end_ms
        facts.shared_signer = signer_key(conf.signer) in shared
    facts.proven = any(r.proven for r, reasons in evidence if not reasons)
    reasons = _row_reasons(facts, union, settings)
    doors: dict[tuple[str, str, int], DoorEvent] = {}
    for r in reads:
        for d in index.doors_near(r):
            doors[(d.device_id, d.sensor, d.seq)] = d
    return Row(
        child,
        lesson.group_id,
        lesson.center_id,
        lesson.date,
        rules.status(facts, reasons),
        reasons,
        lesson.price_kzt,
        lesson,
        evidence,
        tuple(sorted(doors.values(), key=lambda d: d.time_ms)),
        coverage,
        conf,
        facts,
    )


def _window_reasons(
    index: CenterIndex, lo: int, hi: int, settings: ReconcileSettings
) -> dict[str, tuple[str, ...]]:
    """The window reasons that fire for each device of the center (only those with one)."""
    broken = index.broken_chains(lo, hi)
    clones = index.clone_suspects(lo, hi)
    out = {}
    for device in index.devices:
        facts = WindowFacts(device, device in broken, device in clones)
        fired = tuple([name for name, check in _WINDOW_CHECKS if check(facts, settings)])
        if fired:
            out[device] = fired
    return out


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
