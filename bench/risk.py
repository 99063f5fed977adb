"""The risk queue on generated cities with ``patient`` fraud: do the fraud centers rank on top?

Each city comes from :mod:`portal.synthetic.generator` (honest behaviour and its own
injected fraud), then a few centers are made ``patient`` on top of its output
(:func:`inject_patient`): on every lesson, each absent child of the group is claimed
with probability ``claim``, the child's card tapped alone with its own door opening
(``open`` 1-3 s before, ``closed`` 5-15 s after) at a random moment of the arrival
window, never tapped out, and confirmed. Per lesson those rows are clean, so
reconciliation pays them; the queue must find the centers.

Reconciliation runs in memory (:func:`portal.reconcile.engine.reconcile` on the
devices' logs, reads kept for departures), then :func:`portal.reconcile.risk.risk_queue`.
A fraud center is found when one of its weeks is in the top 10 % of the queue's
entries (the inspector visits the center); ``precision_at_10`` is the share of
the top 10 entries that are weeks of fraud centers.

A variant removes 30 % of the honest children's tap-outs from every log before
reconciling (the shared honest model has about 70 % tapping out; the generator has
all of them), and two variants count subsets of the features: what is left when
departures and lone arrivals carry no information at all.

``--quick``: 4 cities of 20 centers (a smoke test).
"""

from __future__ import annotations

import math
import random
import time as clock
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from itertools import accumulate
from typing import Any

from bench.common import finish, parse_args, table
from portal.reconcile.engine import CenterInput, Result, reconcile
from portal.reconcile.index import CenterIndex, Read
from portal.reconcile.model import Confirmation, DeviceLog, IntegrityEvent, ReconcileSettings
from portal.reconcile.risk import FEATURES, RiskEntry, RiskSettings, risk_queue
from portal.reconcile.rules import VERIFIED
from portal.reconcile.trusted_time import place
from portal.synthetic.generator import City, CityConfig, LocalPortal, generate

S = 1000
MIN = 60 * S


@dataclass(slots=True)
class Patient:
    """A city with patient fraud added: logs, events, confirmations and the fraud truth."""

    city: City
    logs: dict[str, DeviceLog]  # center -> its device's log
    events: list[IntegrityEvent]
    confirmations: list[Confirmation]
    centers: set[str]  # the patient centers
    rows: set[tuple[str, str, date]]  # (child, group, date) claimed by them


def inject_patient(
    city: City, link: LocalPortal, centers: Sequence[str], claim: float, seed: int
) -> Patient:
    """Claim absent children of ``centers`` one tap and one door opening at a time."""
    rng = random.Random(seed)
    settings = ReconcileSettings()
    confirmed = {(c.child_id, c.group_id, c.date) for c in city.confirmations}
    kids: dict[str, list[Any]] = defaultdict(list)
    for child in city.children:
        kids[child.group_id].append(child)
    logs = {d.center_id: link.log(d) for d in city.devices}
    events = list(link.events)
    confirmations = list(city.confirmations)
    rows: set[tuple[str, str, date]] = set()
    wanted = set(centers)
    device_of = {d.center_id: d.device_id for d in city.devices}
    added: dict[str, list[tuple[int, str, dict[str, Any]]]] = defaultdict(list)
    for center in sorted(wanted):
        log = logs[center]
        badge_times = sorted(
            (t, str(d["uid"]).upper())
            for t, kind, d in zip(log.wall_ms, log.type, log.data, strict=True)
            if kind == "badge" and d is not None
        )
        times = [t for t, _ in badge_times]
        for lesson in (x for x in city.lessons if x.center_id == center):
            lo, hi = lesson.start_ms - settings.margin_s * 1000, lesson.end_ms
            read = {u for _, u in badge_times[bisect_left(times, lo) : bisect_right(times, hi)]}
            for child in kids[lesson.group_id]:
                key = (child.child_id, lesson.group_id, lesson.date)
                if key in confirmed or read & {b.upper() for b in child.badges}:
                    continue  # attended, or claimed already by the generator's fraud
                if rng.random() >= claim:
                    continue
                t = rng.randint(lesson.start_ms - 30 * MIN, lesson.start_ms + 10 * MIN)
                uid = child.badges[0]
                added[center] += [
                    (t - rng.randint(1 * S, 3 * S), "door", {"sensor": "front", "state": "open"}),
                    (
                        t,
                        "badge",
                        {
                            "reader": "main",
                            "driver": "mfrc522",
                            "uid": uid,
                            "uid_len": len(uid) // 2,
                        },
                    ),
                    (
                        t + rng.randint(5 * S, 15 * S),
                        "door",
                        {"sensor": "front", "state": "closed"},
                    ),
                ]
                day = lesson.date + timedelta(days=rng.choice((0, 0, 1)))
                confirmations.append(
                    Confirmation(
                        child.child_id,
                        lesson.group_id,
                        lesson.date,
                        f"{day.isoformat()} {rng.randint(19, 22):02d}:{rng.randrange(60):02d}",
                        f"parent-{child.child_id}",
                    )
                )
                rows.add(key)
    for center, extra in added.items():
        logs[center], events = _merge(logs[center], extra, events, device_of[center], settings)
    return Patient(city, logs, events, confirmations, wanted, rows)


def _merge(
    log: DeviceLog,
    extra: list[tuple[int, str, dict[str, Any]]],
    events: list[IntegrityEvent],
    device: str,
    settings: ReconcileSettings,
) -> tuple[DeviceLog, list[IntegrityEvent]]:
    """The log with ``extra`` records placed by time, seqs renumbered around declared holes.

    A new record takes its boot, clock state and receipts from its neighbours, as the
    device would have made it: its receipts bracket it like the records around it.
    """
    placed, trusted = place(log, settings.time_tolerance_ms, settings.time_bracket_ms)
    ceiling = list(
        accumulate((p if ok else -(2**62) for p, ok in zip(placed, trusted, strict=True)), max)
    )
    at: dict[int, list[tuple[int, str, dict[str, Any]]]] = defaultdict(list)
    for item in sorted(extra, key=lambda x: x[0]):
        i = bisect_right(ceiling, item[0])  # insert before record i
        while 0 < i < len(log) and log.seq[i] != log.seq[i - 1] + 1:
            i += 1  # never inside a declared hole's numbers
        at[i].append(item)
    out = DeviceLog(log.device_id, log.center_id)
    shift = cur = 0
    new_seq: dict[int, int] = {}
    n = len(log)
    for i in range(n + 1):
        for t, kind, data in at.get(i, ()):
            j = max(i - 1, 0)  # the record before (the first one when inserting at 0)
            shift += 1
            cur += 1
            out.append(
                seq=cur,
                type=kind,
                wall_ms=t if log.synced[j] else t + log.wall_ms[j] - placed[j],
                synced=log.synced[j],
                boot=log.boot[j],
                mono_ns=log.mono_ns[j] + (t - placed[j]) * 1_000_000,
                anchor_ms=log.anchor_ms[j],
                covered_ms=log.covered_ms[min(i, n - 1)],
                data=data,
            )
        if i < n:
            cur = new_seq[log.seq[i]] = log.seq[i] + shift
            out.append(
                seq=cur,
                type=log.type[i],
                wall_ms=log.wall_ms[i],
                synced=log.synced[i],
                boot=log.boot[i],
                mono_ns=log.mono_ns[i],
                anchor_ms=log.anchor_ms[i],
                covered_ms=log.covered_ms[i],
                data=log.data[i],
            )
    moved = []
    for ev in events:
        if ev.device_id != device or ev.first_seq is None or ev.last_seq is None:
            moved.append(ev)
            continue
        before = new_seq.get(ev.first_seq - 1, ev.first_seq - 1)
        size = ev.last_seq - ev.first_seq
        moved.append(replace(ev, first_seq=before + 1, last_seq=before + 1 + size))
    return out, moved


@dataclass(slots=True)
class Measured:
    entries: list[RiskEntry]
    found: dict[str, int]  # fraud center -> its best rank (1-based)
    top: int  # entries in the top 10 %
    precision_at_10: float
    patient_rows: int
    patient_verified: float  # share of the patient rows reconciliation calls verified
    seconds: float = 0.0  # wall time of risk_queue


def reconciled(p: Patient) -> tuple[Result, dict[str, list[Read]]]:
    """The city reconciled in memory, every center's reads kept."""
    city = p.city
    reads: dict[str, list[Read]] = {}

    def keep(center: str, index: CenterIndex) -> None:
        reads[center] = index.reads

    result = reconcile(
        city.config.first,
        city.last,
        schedule=city.schedule,
        members=city.members(),
        confirmations=p.confirmations,
        load_center=lambda c: CenterInput(
            c,
            [p.logs[c]] if c in p.logs else [],
            [e for e in p.events if e.device_id == f"dev-{c}"],
        ),
        settings=ReconcileSettings(),
        zone=city.zone,
        observe=keep,
    )
    return result, reads


def measure(
    p: Patient, result: Result, reads: dict[str, list[Read]], settings: RiskSettings | None = None
) -> Measured:
    city = p.city
    members = city.members()
    start = clock.perf_counter()
    entries = risk_queue(
        result, members=members, lessons=city.lessons, reads=reads, settings=settings
    )
    seconds = clock.perf_counter() - start
    top = max(1, math.ceil(0.1 * len(entries)))
    found: dict[str, int] = {}
    for rank, e in enumerate(entries, 1):
        if e.center_id in p.centers:
            found.setdefault(e.center_id, rank)
    hits = sum(e.center_id in p.centers for e in entries[:10])
    status = {(r.child_id, r.group_id, r.date): r.status for r in result.rows}
    verified = sum(status.get(k) == VERIFIED for k in p.rows)
    return Measured(
        entries,
        found,
        top,
        hits / min(10, len(entries)),
        len(p.rows),
        verified / len(p.rows) if p.rows else 0.0,
        seconds,
    )


def patient_city(
    city: City, link: LocalPortal, fraud: int, claim: float
) -> tuple[Patient, Result, dict[str, list[Read]]]:
    """``fraud`` centers of the city made patient (chosen by the city's seed), reconciled."""
    rng = random.Random(city.config.seed * 7919)
    chosen = rng.sample(city.centers, fraud)
    p = inject_patient(city, link, chosen, claim, city.config.seed)
    result, reads = reconciled(p)
    return p, result, reads


def forget_departures(p: Patient, share: float, seed: int) -> Patient:
    """``share`` of the children's tap-outs removed from every log (the shared honest model
    has about 70 % of children tapping out; the generator has all of them).

    The records are simply left out: nothing in reconciliation reads seq continuity
    without a declared hole, so no rule sees the removal.
    """
    rng = random.Random(seed)
    settings = ReconcileSettings()
    uids: dict[str, set[str]] = defaultdict(set)
    for child in p.city.children:
        uids[child.group_id].update(b.upper() for b in child.badges)
    logs = {}
    for center, log in p.logs.items():
        placed, _ = place(log, settings.time_tolerance_ms, settings.time_bracket_ms)
        ends = sorted((x.end_ms, x.group_id) for x in p.city.lessons if x.center_id == center)
        end_times = [e for e, _ in ends]
        drop: set[int] = set()
        for i, (kind, data) in enumerate(zip(log.type, log.data, strict=True)):
            if kind != "badge" or data is None:
                continue
            k = bisect_left(end_times, placed[i] - 10 * MIN)
            for _end, group in ends[k : bisect_right(end_times, placed[i])]:
                if str(data["uid"]).upper() in uids[group] and rng.random() < share:
                    drop.add(i)
        kept = DeviceLog(log.device_id, log.center_id)
        for i in range(len(log)):
            if i not in drop:
                kept.append(
                    seq=log.seq[i],
                    type=log.type[i],
                    wall_ms=log.wall_ms[i],
                    synced=log.synced[i],
                    boot=log.boot[i],
                    mono_ns=log.mono_ns[i],
                    anchor_ms=log.anchor_ms[i],
                    covered_ms=log.covered_ms[i],
                    data=log.data[i],
                )
        logs[center] = kept
    return replace(p, logs=logs)


THINNED = "all features, 30 % of honest children not tapping out"

# What the queue counts in each measured variant: every feature, or a subset (what is
# left when the honest model makes departures and lone arrivals common).
VARIANTS = {
    "all features": (),
    "without departures and lone arrivals": tuple(
        f for f in FEATURES if f not in ("no_departure_share", "lone_arrival_share")
    ),
    "attendance only": ("attendance_share", "attendance_period"),
}


def main() -> None:
    args = parse_args(__doc__ or "")
    cities, centers, fraud = (4, 20, 2) if args.quick else (20, 40, 3)
    claims = (0.7,) if args.quick else (0.7, 0.4)
    base = CityConfig(
        centers=centers,
        groups_per_center=4,
        children_per_group=14,
        first=date(2024, 4, 1),
        days=28,
        sign=False,
        unsynced=0.1,
    )
    out: dict[str, Any] = {}
    start = clock.perf_counter()
    tally: dict[tuple[float, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for n in range(cities):
        city, link = generate(replace(base, seed=100 + n))
        assert isinstance(link, LocalPortal)
        for claim in claims:
            p, result, reads = patient_city(city, link, fraud, claim)
            for variant, features in VARIANTS.items():
                m = measure(p, result, reads, RiskSettings(features=features))
                ok = len(m.found) == len(p.centers) and all(r <= m.top for r in m.found.values())
                t = tally[(claim, variant)]
                t["passed"].append(float(ok))
                t["precision"].append(m.precision_at_10)
                t["verified"].append(m.patient_verified)
                t["worst_rank"].append(float(max(m.found.values(), default=0)))
                t["top"].append(float(m.top))
                t["seconds"].append(m.seconds)
                t["rows"].append(float(len(result.rows)))
            thin = forget_departures(p, 0.3, city.config.seed)
            result, reads = reconciled(thin)
            m = measure(thin, result, reads)
            ok = len(m.found) == len(p.centers) and all(r <= m.top for r in m.found.values())
            t = tally[(claim, THINNED)]
            t["passed"].append(float(ok))
            t["precision"].append(m.precision_at_10)
            t["verified"].append(m.patient_verified)
            t["worst_rank"].append(float(max(m.found.values(), default=0)))
    rows = []
    for (claim, variant), t in tally.items():
        share = sum(t["passed"]) / cities
        precision = sum(t["precision"]) / cities
        key = f"claim_{int(claim * 100)}"
        if variant == THINNED:
            out[f"{key}_thinned_cities_all_found_top10pct"] = round(share, 4)
            out[f"{key}_thinned_precision_at_10"] = round(precision, 4)
        if variant == "all features":
            out[f"{key}_cities_all_found_top10pct"] = round(share, 4)
            out[f"{key}_precision_at_10"] = round(precision, 4)
            out[f"{key}_patient_rows_verified"] = round(sum(t["verified"]) / cities, 4)
        rows.append(
            [
                f"{claim:.0%}",
                variant,
                f"{int(sum(t['passed']))}/{cities} ({share:.0%})",
                f"{precision:.2f}",
                f"{min(t['precision']):.2f}",
                int(max(t["worst_rank"])),
                f"{sum(t['verified']) / cities:.1%}",
            ]
        )
    seconds = clock.perf_counter() - start
    out["cities"] = cities
    every = tally[(claims[0], "all features")]
    out["risk_queue_s_median"] = round(sorted(every["seconds"])[len(every["seconds"]) // 2], 3)
    body = (
        f"{cities} generated cities, each {centers} centers x 4 groups x 14 "
        f"children, 28 days (4 ISO weeks: {centers * 4} center-weeks, top 10 % = "
        f"{math.ceil(0.1 * centers * 4)} entries), {fraud} patient centers chosen at random "
        "per city; the generator's own injections (12 % of lessons) stay in every center. "
        f"Run time {seconds:.0f} s; `risk_queue` itself took {out['risk_queue_s_median']:.2f} s "
        f"(median) for {int(sum(every['rows']) / len(every['rows'])):,} rows and their reads.\n\n"
        + table(
            [
                "claim rate",
                "features counted",
                "cities with every fraud center in the top 10 %",
                "precision at 10 (mean)",
                "precision at 10 (worst city)",
                "worst best-rank of a fraud center",
                "patient rows verified per lesson",
            ],
            rows,
        )
        + "\n\nClaim rate: the share of absent children the club claims in each lesson. "
        "A fraud center is found when one of its weeks is in the top 10 % of the entries. "
        "The last column shows that the per-lesson rules pay these rows: only the queue "
        "finds them."
    )
    finish("risk", "Risk queue (patient fraud)", body, out, args)


if __name__ == "__main__":
    main()
