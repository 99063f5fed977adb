"""False positives of the time rules on honest devices: outages, lost answers, no NTP.

Simulates honest devices for a month as the portal sees them (no database):
heartbeats every 300 s, each record uploaded 1.5 s after it is made and
answered by a kept receipt, taps on lesson afternoons, short outages (1-10 min,
a few per device-week) and long ones (2-48 h, about one per device-month), half
of all outages starting with an answer the device never received, a tenth of
the devices without NTP (clock right to a minute). Then counts, per read: how
many are ``time_untrusted``, ``stale_anchor`` or unproven, and how many devices
show a clone sign. Honest behaviour is the shared model of docs/reconciliation.md;
its parameters are assumptions until pilot data exists.

    python -m bench.time_rules [--devices N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

from portal.reconcile.clones import log_signs
from portal.reconcile.model import DeviceLog, ReconcileSettings
from portal.reconcile.trusted_time import place, proven, stale_anchors

S, MIN, HOUR, DAY = 1000, 60_000, 3_600_000, 86_400_000
T0 = 1_717_200_000_000


@dataclass
class Counts:
    reads: int = 0
    untrusted: int = 0
    stale: int = 0
    unproven: int = 0
    clone_devices: int = 0
    outages: int = 0
    lost_answers: int = 0


def device_month(rng: random.Random, counts: Counts, days: int = 30) -> DeviceLog:
    log = DeviceLog("D", "C")
    no_ntp = rng.random() < 0.1
    skew = rng.randint(-60 * S, 60 * S) if no_ntp else 0
    end = T0 + days * DAY
    # Outages as (start, end): short ones a few per week, long ones about monthly.
    outages: list[tuple[int, int]] = []
    for _ in range(rng.randint(days * 3 // 7, days * 5 // 7)):
        a = rng.randint(T0, end)
        outages.append((a, a + rng.randint(1 * MIN, 10 * MIN)))
    if rng.random() < days / 30:
        a = rng.randint(T0, end)
        outages.append((a, a + rng.randint(2 * HOUR, 48 * HOUR)))
    outages.sort()
    counts.outages += len(outages)
    events: list[tuple[int, str]] = []
    t = T0
    while t < end:
        events.append((t, "heartbeat"))
        t += 300 * S
    for d in range(days):
        base = T0 + d * DAY + 15 * HOUR
        for _ in range(rng.randint(10, 25)):
            events.append((base + rng.randint(-30 * MIN, 10 * MIN), "badge"))
    events.sort()
    anchor: int | None = None
    before_last: int | None = None  # the device's anchor before its last answered upload
    pending: list[int] = []
    k = 0  # the next outage
    offline_until = -1
    for at, kind in events:
        while k < len(outages) and outages[k][0] <= at:
            _, stop = outages[k]
            k += 1
            if stop <= at:
                continue
            online = at >= offline_until and not pending  # its last upload was answered
            if online and log.receipt_ms and rng.random() < 0.5:
                # The last upload's receipt was kept but its answer lost: the device
                # names the receipt it had before that upload from then on.
                counts.lost_answers += 1
                anchor = before_last
            offline_until = max(offline_until, stop)
        if pending and at >= offline_until:
            # Back in contact: the backlog goes up, answered.
            back = offline_until
            log.receipt_ms.append(back)
            for i in pending:
                log.covered_ms[i] = back
            pending, before_last, anchor = [], anchor, back
        log.append(
            seq=len(log) + 1,
            type=kind,
            wall_ms=at + skew,
            synced=not no_ntp,
            boot="b",
            mono_ns=(at - T0 + HOUR) * 1_000_000,
            anchor_ms=anchor,
            covered_ms=None,
            data={},
        )
        pending.append(len(log) - 1)
        if at >= offline_until:
            up = at + 1500
            log.receipt_ms.append(up)
            for i in pending:
                log.covered_ms[i] = up
            pending, before_last, anchor = [], anchor, up
    return log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    s = ReconcileSettings()
    counts = Counts()
    for _ in range(args.devices):
        log = device_month(rng, counts)
        placed = place(log, s.time_tolerance_ms)
        badges = [i for i, t in enumerate(log.type) if t == "badge"]
        counts.reads += len(badges)
        counts.untrusted += sum(not placed.trusted[i] for i in badges)
        counts.stale += sum(stale_anchors(log, placed.times, s.time_tolerance_ms, badges))
        counts.unproven += len(badges) - sum(proven(log, placed, s.proof_bracket_ms, badges))
        counts.clone_devices += bool(log_signs(log, placed.times))
    n = counts.reads
    print(
        f"{args.devices} honest device-months, {n} reads, {counts.outages} outages "
        f"({counts.lost_answers} starting with a lost answer)\n"
        f"time_untrusted {counts.untrusted} ({counts.untrusted / n:.3%}), "
        f"stale_anchor {counts.stale} ({counts.stale / n:.3%}), "
        f"unproven {counts.unproven} ({counts.unproven / n:.3%}), "
        f"devices with a clone sign {counts.clone_devices}"
    )


if __name__ == "__main__":
    main()
