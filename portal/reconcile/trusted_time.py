"""Trusted and proven time per record (docs/reconciliation.md), one device's log in seq order.

A record was made after its anchor receipt's ``server_ms`` and before the
``server_ms`` of the first receipt that covered it (each bound widened by the
tolerance). Both bounds are readings of the portal's clock, which the device
cannot move; everything else it says about time (``wall_ms``, ``synced``) is a
claim.

The record's *placed* time is its own ``wall_ms`` when it claims ``synced``;
otherwise the ``wall_ms`` of the nearest synced record of the same boot (by
monotonic distance, before or after) plus the ``mono_ns`` difference; with no
synced record in its boot at all, its claimed ``wall_ms``.

- **trusted**: the placed time lies within the bounds that exist. A record is
  untrusted (``time_untrusted``) only when its time provably lies outside them;
  it then keeps its claimed ``wall_ms``.
- **proven**: trusted, both bounds exist, and each lies within
  ``proof_bracket_ms`` of the placed time. The receipts then pin the record's
  real time to within the bracket whatever the device's clock and NTP flag say;
  a trusted but unproven record (made while the device was out of contact) is
  not accused, but it proves nothing either.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from typing import NamedTuple

from portal.reconcile.model import DeviceLog


class Placed(NamedTuple):
    """Per record of a log, in its order: the time the rules use, trusted, proven."""

    times: list[int]
    trusted: list[bool]
    proven: list[bool]


def place(log: DeviceLog, tolerance_ms: int, proof_bracket_ms: int) -> Placed:
    """Place every record of ``log`` (docs/reconciliation.md, How times are checked)."""
    wall, synced, boot, mono = log.wall_ms, log.synced, log.boot, log.mono_ns
    candidate = list(wall)
    unsynced = [i for i, s in enumerate(synced) if not s]
    if unsynced:
        wanted = {boot[i] for i in unsynced}
        anchors: dict[str, list[int]] = defaultdict(list)  # synced records per boot, in order
        for i, (b, s) in enumerate(zip(boot, synced, strict=True)):
            if s and b in wanted:
                anchors[b].append(i)
        for i in unsynced:
            near = anchors.get(boot[i])
            if not near:
                continue  # no synced reference: the claim itself, judged by the bounds
            k = bisect_left(near, i)
            j = near[k] if k < len(near) else -1
            if k > 0 and (j < 0 or mono[i] - mono[near[k - 1]] <= mono[j] - mono[i]):
                j = near[k - 1]
            candidate[i] = wall[j] + (mono[i] - mono[j]) // 1_000_000
    tol, bracket = tolerance_ms, proof_bracket_ms
    times: list[int] = []
    trusted: list[bool] = []
    proven: list[bool] = []
    for c, w, lo, hi in zip(candidate, wall, log.anchor_ms, log.covered_ms, strict=True):
        ok = (lo is None or c >= lo - tol) and (hi is None or c <= hi + tol)
        times.append(c if ok else w)
        trusted.append(ok)
        tight = lo is not None and hi is not None and lo >= c - bracket and hi <= c + bracket
        proven.append(ok and tight)
    return Placed(times, trusted, proven)


# Receipts newer than a record's anchor, each signed more than the tolerance before the
# record's time, that make the anchor stale: one may be an answer the device never got
# (lost at the start of an outage); a second is a further answer after it.
STALE_ANSWERS = 2


def stale_anchors(log: DeviceLog, times: list[int], tolerance_ms: int) -> list[bool]:
    """Per record: its anchor is older than a receipt the device provably had.

    The device had a receipt when (a) an earlier record of its chain already
    named it or a newer one (an anchor never goes backwards along seq), or
    (b) the portal answered the device at least :data:`STALE_ANSWERS` times
    after the anchor's receipt, all more than ``tolerance_ms`` before the
    record's time (``log.receipt_ms``). An anchor of ``""`` counts as older
    than every receipt; it is honest only before the first one.
    """
    receipts = log.receipt_ms
    out: list[bool] = []
    newest: int | None = None  # the newest anchor named so far along the chain
    for anchor, t in zip(log.anchor_ms, times, strict=True):
        if newest is not None and (anchor is None or anchor < newest):
            out.append(True)
            continue
        after = 0 if anchor is None else bisect_right(receipts, anchor)
        out.append(bisect_left(receipts, t - tolerance_ms) - after >= STALE_ANSWERS)
        if anchor is not None:
            newest = anchor
    return out
