"""Burst and door thresholds from simulated honest arrivals and card-stack attacks.

Each simulated device-day is one lesson start at one device (one or two readers, one
door): the children of 1-4 groups arrive in [start - 30 min, start + 10 min] in
clusters of 1-6 (60/25/10/4/1 %), taps 1-4 s apart (one gap in ten 1.0-1.5 s), each
cluster opening the door 1-3 s before its first tap and leaving it to close 5-15 s
after its last (the sensor records the union: a cluster arriving while the door is
open makes no event). On warm days (15 %) the door is propped open from 20-40 min
before the start to 10-30 min after it, and half of the children rush in during the
last 6 minutes before the start. The attacks are added to an honest day at the same
device:

- ``slow_stack``: a stack of cards at one reader, one every 1.6-3 s;
- ``split_stack``: a stack tapped fast (0.5-1.4 s) alternating the device's two readers;
- ``runs_of_four``: runs of 4 fast taps, 5-60 s pauses between runs, no door event;
- ``paced``: a stack at one reader every 3.2-6 s (the paced attack the tempo rules leave
  to the risk queue).

Each attack is played with its door handled three ways (none, one opening of its own,
inside a propped door); stack sizes 3-12. The grid of candidate thresholds is
measured on the tempo features alone; the chosen settings are then run through the
engine (CenterIndex and the read rules), which gives every rule's rate.

``python -m bench.bursts [--quick]``; the last line is one JSON object.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.common import finish, parse_args, table
from portal.reconcile import rules
from portal.reconcile.engine import read_facts
from portal.reconcile.index import CenterIndex
from portal.reconcile.model import DeviceLog, ReconcileSettings

S = 1000
MIN = 60 * S
DAY = 86_400_000
ATTACKS = ("slow_stack", "split_stack", "runs_of_four", "paced")
DOORS = ("none", "own", "propped")
SIZES = (60, 25, 10, 4, 0.5, 0.5)  # cluster sizes 1..6, percent


@dataclass
class Day:
    """One lesson start at one device: taps (time, uid, reader, label) and door events."""

    start: int
    readers: tuple[str, ...]
    warm: bool
    taps: list[tuple[int, str, str, str]] = field(default_factory=list)
    doors: list[tuple[int, str]] = field(default_factory=list)
    wants: list[tuple[int, int]] = field(default_factory=list)  # door open spans
    propped: tuple[int, int] | None = None


def _gap(rng: random.Random) -> int:
    return rng.randint(1000, 1499) if rng.random() < 0.1 else rng.randint(1500, 4000)


def honest(rng: random.Random, start: int, n_uid: list[int]) -> Day:
    readers = ("main", "side") if rng.random() < 0.5 else ("main",)
    day = Day(start, readers, rng.random() < 0.15)
    children = sum(1 for _ in range(14 * rng.randint(1, 4)) if rng.random() < 0.9)
    if day.warm:
        day.propped = (start - rng.randint(20, 40) * MIN, start + rng.randint(10, 30) * MIN)
    sizes = []
    left = children
    while left:
        sizes.append(min(left, rng.choices(range(1, 7), SIZES)[0]))
        left -= sizes[-1]
    arrivals = []
    for _ in sizes:
        if day.warm and rng.random() < 0.6:
            arrivals.append(rng.randint(start - 10 * MIN, start))  # the rush before the start
        else:
            arrivals.append(rng.randint(start - 30 * MIN, start + 10 * MIN))
    arrivals.sort()
    # Children queue at the door: a cluster taps after the one before it, or, at a
    # device with two readers, in a second queue beside it (two clusters at once).
    free = [0] * len(readers)
    for size, at in zip(sizes, arrivals, strict=True):
        q = min(range(len(free)), key=free.__getitem__)
        t = max(at + rng.randint(1, 3) * S, free[q] + _gap(rng))
        first = t
        for k in range(size):
            if k:
                t += _gap(rng)
            n_uid[0] += 1
            day.taps.append((t, f"H{n_uid[0]:07X}", rng.choice(readers), "honest"))
        free[q] = t
        day.wants.append((first - rng.randint(1, 3) * S, t + rng.randint(5, 15) * S))
    return day


def attack(rng: random.Random, day: Day, kind: str, door: str, size: int, n_uid: list[int]) -> None:
    if door == "propped" and day.propped is None:
        day.warm = True
        day.propped = (day.start - rng.randint(20, 40) * MIN, day.start + rng.randint(10, 30) * MIN)
    lo, hi = day.start - 30 * MIN, day.start + 10 * MIN
    if door == "propped" and day.propped is not None:
        lo, hi = max(lo, day.propped[0] + MIN), min(hi, day.propped[1] - 5 * MIN)
    t = first = rng.randint(lo, hi)
    readers = day.readers if kind != "split_stack" else ("main", "side")
    day.readers = tuple(sorted(set(day.readers) | set(readers)))
    for k in range(size):
        if k:
            if kind == "slow_stack":
                t += rng.randint(1600, 3000)
            elif kind == "paced":
                t += rng.randint(3200, 6000)
            elif kind == "runs_of_four" and k % 4 == 0:
                t += rng.randint(5, 60) * S
            else:
                t += rng.randint(500, 1400)
        n_uid[0] += 1
        reader = readers[k % len(readers)] if kind == "split_stack" else readers[0]
        day.taps.append((t, f"A{n_uid[0]:07X}", reader, kind))
    if door == "own" and kind != "runs_of_four":
        day.wants.append((first - rng.randint(1, 3) * S, t + rng.randint(5, 15) * S))


def door_events(day: Day) -> list[tuple[int, str]]:
    """The sensor's records: the union of the spans the door was wanted open."""
    spans = sorted(day.wants + ([day.propped] if day.propped else []))
    out: list[tuple[int, str]] = []
    cur: list[int] | None = None
    for a, b in spans:
        if cur is not None and a <= cur[1]:
            cur[1] = max(cur[1], b)
            continue
        if cur is not None:
            out += [(cur[0], "open"), (cur[1], "closed")]
        cur = [a, b]
    if cur is not None:
        out += [(cur[0], "open"), (cur[1], "closed")]
    return out


def runs(taps: Sequence[tuple[int, str, str, str]], gap: int) -> list[int]:
    """Distinct badges of each tap's run at the device (gaps under ``gap``)."""
    out = [1] * len(taps)
    start = 0
    for k in range(1, len(taps) + 1):
        if k < len(taps) and taps[k][0] - taps[k - 1][0] < gap:
            continue
        n = len({taps[j][1] for j in range(start, k)})
        for j in range(start, k):
            out[j] = n
        start = k
    return out


def simulate(days: int, seed: int) -> list[tuple[Day, str]]:
    """Honest days, and as many with one attack each (kind, door, size cycled)."""
    rng = random.Random(seed)
    n_uid = [0]
    out: list[tuple[Day, str]] = []
    plays = [(k, d, n) for k in ATTACKS for d in DOORS for n in range(3, 13)]
    plays = [(k, d, 4 * (n % 3 + 1) if k == "runs_of_four" else n) for k, d, n in plays]
    for i in range(days):
        day = honest(rng, i * DAY + 12 * 3600 * S, n_uid)
        label = "honest"
        if i % 2:
            kind, door, size = plays[(i // 2) % len(plays)]
            if not (kind == "runs_of_four" and door != "none"):
                attack(rng, day, kind, door, size, n_uid)
                label = f"{kind}/{door}/{size}"
        day.taps.sort()
        day.doors = door_events(day)
        out.append((day, label))
    return out


def reader_runs(taps: Sequence[tuple[int, str, str, str]], gap: int) -> list[int]:
    """Distinct badges of each tap's run at its reader."""
    by: dict[str, list[int]] = defaultdict(list)
    for i, tap in enumerate(taps):
        by[tap[2]].append(i)
    out = [1] * len(taps)
    for idx in by.values():
        for i, n in zip(idx, runs([taps[i] for i in idx], gap), strict=True):
            out[i] = n
    return out


def candidates(chosen: ReconcileSettings) -> list[tuple[int, int, int, int, int]]:
    """The chosen (gap, device min, reader min, slow gap, slow min) and each varied alone."""
    base = (
        chosen.burst_gap_ms,
        chosen.burst_min_uids,
        chosen.burst_reader_min_uids,
        chosen.burst_slow_gap_ms,
        chosen.burst_slow_min_uids,
    )
    out = [base]
    for pos, values in enumerate(
        [(1200, 1500), (4, 5, 6), (3, 4, 5), (2500, 3100, 3500), (6, 7, 8, 9, 10)]
    ):
        for v in values:
            c = (*base[:pos], v, *base[pos + 1 :])
            if c not in out:
                out.append(c)  # type: ignore[arg-type]
    return out


def grid(
    sim: list[tuple[Day, str]], chosen: ReconcileSettings
) -> tuple[list[list[Any]], dict[str, Any]]:
    """Honest flagged share and each attack's recall from tempo alone, per candidate."""
    cands = candidates(chosen)
    dev: dict[int, list[int]] = defaultdict(list)
    rdr: dict[int, list[int]] = defaultdict(list)
    labels: list[str] = []
    sizes: list[int] = []
    warm: list[bool] = []
    for day, label in sim:
        size = int(label.rsplit("/", 1)[1]) if "/" in label else 0
        for g in {c[0] for c in cands}:
            dev[g].extend(runs(day.taps, g))
        for g in {c[0] for c in cands} | {c[3] for c in cands}:
            rdr[g].extend(reader_runs(day.taps, g))
        labels.extend(t[3] for t in day.taps)
        sizes.extend(size for _ in day.taps)
        warm.extend(day.warm for _ in day.taps)
    honest_idx = [i for i, lab in enumerate(labels) if lab == "honest" and not sizes[i]]
    warm_idx = [i for i in honest_idx if warm[i]]
    by_attack = {a: [i for i, lab in enumerate(labels) if lab == a] for a in ATTACKS}
    rows = []
    for gap, dmin, rmin, sgap, smin in cands:
        d, r, sl = dev[gap], rdr[gap], rdr[sgap]
        hits = [d[i] >= dmin or r[i] >= rmin or sl[i] >= smin for i in range(len(labels))]
        fp = sum(hits[i] for i in honest_idx) / len(honest_idx)
        fpw = sum(hits[i] for i in warm_idx) / max(len(warm_idx), 1)
        rec = []
        for a, idx in by_attack.items():
            cut = {"slow_stack": smin, "split_stack": dmin}.get(a, 0)
            big = [i for i in idx if sizes[i] >= cut]
            rec.append(sum(hits[i] for i in big) / max(len(big), 1))
        rows.append([gap, dmin, rmin, sgap, smin, fp, fpw, *rec])
    return rows, {"honest_reads": len(honest_idx), "warm_reads": len(warm_idx)}


def engine_run(sim: list[tuple[Day, str]], settings: ReconcileSettings) -> dict[str, Any]:
    """The chosen settings through CenterIndex and the read rules of the engine."""
    log = DeviceLog("D1", "C1")
    seq = 0

    def add(kind: str, at: int, data: dict[str, Any]) -> None:
        nonlocal seq
        seq += 1
        log.append(
            seq=seq,
            type=kind,
            wall_ms=at,
            synced=True,
            boot="b1",
            mono_ns=at * 1_000_000,
            anchor_ms=at - 60 * S,
            covered_ms=at + 2 * S,
            data=data,
        )

    add("boot", 0, {"doors": ["front"], "reader_drivers": {"main": "mfrc522", "side": "mfrc522"}})
    label_of: dict[int, tuple[str, str, bool]] = {}
    for day, label in sim:
        events: list[tuple[int, int, dict[str, Any], str]] = [
            (t, 0, {"sensor": "front", "state": st}, "") for t, st in day.doors
        ]
        events += [
            (t, 1, {"reader": r, "driver": "mfrc522", "uid": u, "uid_len": 4}, lab)
            for t, u, r, lab in day.taps
        ]
        for at, kind, data, lab in sorted(events, key=lambda e: (e[0], e[1])):
            add("badge" if kind else "door", at, data)
            if kind:
                label_of[seq] = (lab, label, day.warm)
    index = CenterIndex([log], [], settings)
    checks = [(r.name, r.check) for r in rules.READ_REASONS]
    fired: dict[str, Counter[str]] = defaultdict(Counter)
    caught: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for facts in read_facts(index, settings):
        lab, day_label, warm = label_of[facts.read.seq]
        key = lab if lab != "honest" else ("honest_warm" if warm else "honest")
        if lab == "honest" and day_label != "honest":
            key = "collateral"  # an honest tap on a day with an attack at the same device
        names = [n for n, check in checks if check(facts, settings) and n != "time_untrusted"]
        total[key] += 1
        if lab != "honest":
            size = int(day_label.rsplit("/", 1)[1])
            door = day_label.split("/")[1]
            cut = settings.burst_min_uids if lab == "split_stack" else settings.burst_slow_min_uids
            bucket = f"{lab}/{door}/{f'{cut}+' if size >= cut else f'<{cut}'}"
            if lab == "runs_of_four":
                bucket = f"{lab}/{door}/4-12"
            total[bucket] += 1
            caught[bucket] += bool(names)
        for n in names:
            fired[key][n] += 1
        if names:
            caught[key] += 1
    return {"fired": fired, "caught": caught, "total": total}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv)
    days = 1200 if args.quick else 12000
    t0 = time.perf_counter()
    sim = simulate(days, seed=15)
    chosen = ReconcileSettings()
    rows, info = grid(sim, chosen)
    key = [chosen.burst_gap_ms, chosen.burst_min_uids, chosen.burst_reader_min_uids]
    key += [chosen.burst_slow_gap_ms, chosen.burst_slow_min_uids]
    body = [
        f"{days} simulated device-days (half with one attack each), "
        f"{info['honest_reads']} honest reads on days without an attack "
        f"({info['warm_reads']} on warm days). The first line is the chosen setting, each "
        "other line varies one of its values. Columns: the fast gap, the badges a fast run "
        "needs at one device (any reader) and at one reader, the slow gap and the badges "
        "a slow run at one reader needs; the share of honest reads flagged (all days, warm "
        "days); recall per attack from tempo alone, whatever the door (slow_stack: stacks "
        "of at least the slow minimum; split_stack: stacks of at least the device minimum; "
        "runs_of_four: every card; paced: stacks of 3-12 every 3.2-6 s).\n",
        table(
            [
                "gap ms",
                "device min",
                "reader min",
                "slow gap ms",
                "slow min",
                "honest flagged",
                "honest warm",
                *ATTACKS,
            ],
            [[*r[:5], f"{r[5]:.4%}", f"{r[6]:.4%}", *[f"{x:.3f}" for x in r[7:]]] for r in rows],
        ),
    ]
    out = engine_run(sim, chosen)
    fired, caught, total = out["fired"], out["caught"], out["total"]
    names = [
        "card_burst",
        "no_door_passage",
        "door_held_open",
        "no_door_sensor",
        "unknown_reader",
    ]
    lines = []
    for key_ in ["honest", "honest_warm", "collateral", *ATTACKS]:
        n = total[key_]
        lines.append(
            [
                key_,
                n,
                *[f"{fired[key_][x] / max(n, 1):.4%}" for x in names],
                f"{caught[key_] / max(n, 1):.4%}",
            ]
        )
    body.append(
        "\nThe chosen settings through the engine (CenterIndex, read_facts, the read "
        f"rules): gap {chosen.burst_gap_ms} ms with {chosen.burst_min_uids} badges at a "
        f"device or {chosen.burst_reader_min_uids} at a reader, slow gap "
        f"{chosen.burst_slow_gap_ms} ms with {chosen.burst_slow_min_uids} badges at a "
        f"reader, door_open_max "
        f"{chosen.door_open_max_ms // MIN} min. Share of reads each rule flags, and the "
        "share flagged by any of them (for attacks: recall):\n"
    )
    body.append(table(["reads", "count", *names, "any"], lines))
    detail = []
    for a in ATTACKS:
        for d in DOORS:
            cut = chosen.burst_min_uids if a == "split_stack" else chosen.burst_slow_min_uids
            for b in (f"<{cut}", f"{cut}+", "4-12"):
                k = f"{a}/{d}/{b}"
                if total[k]:
                    detail.append([a, d, b, total[k], f"{caught[k] / total[k]:.4f}"])
    body.append("\nRecall by door handling and stack size (any read rule):\n")
    body.append(table(["attack", "door", "stack", "reads", "recall"], detail))
    honest_any = (caught["honest"] + caught["honest_warm"]) / max(
        total["honest"] + total["honest_warm"], 1
    )
    headline = {
        "days": days,
        "honest_flagged": round(honest_any, 6),
        "honest_card_burst": round(
            (fired["honest"]["card_burst"] + fired["honest_warm"]["card_burst"])
            / max(total["honest"] + total["honest_warm"], 1),
            6,
        ),
        "recall": {a: round(caught[a] / max(total[a], 1), 4) for a in ATTACKS},
        # Recall over the stacks the rules claim, whatever the door: slow stacks of at
        # least burst_slow_min_uids, split stacks of at least burst_min_uids.
        "recall_claimed": {
            a: round(
                sum(caught[f"{a}/{d}/{cut}"] for d in DOORS)
                / max(sum(total[f"{a}/{d}/{cut}"] for d in DOORS), 1),
                4,
            )
            for a, cut in (
                ("slow_stack", f"{chosen.burst_slow_min_uids}+"),
                ("split_stack", f"{chosen.burst_min_uids}+"),
                ("runs_of_four", "4-12"),
            )
        },
        "seconds": round(time.perf_counter() - t0, 1),
        "settings": key,
    }
    finish("bursts", "Burst and door thresholds", "\n".join(body), headline, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
