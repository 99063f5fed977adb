"""Trusted and proven time per record (docs/reconciliation.md), one device's log in seq order.

A record was made after its anchor receipt's ``server_ms`` and before the
``server_ms`` of the first receipt that covered it (each bound widened by the
tolerance). Both bounds are readings of the portal's clock, which the device
cannot move; everything else it says about time (``wall_ms``, ``synced``) is a
claim.

The record's *placed* time is its own ``wall_ms`` when it claims ``synced``;
otherwise the ``wall_ms`` of the nearest synced record of the same boot (by
monotonic distance, before or after) plus the ``mono_ns`` difference; with no
synced record in its boot at all, its claimed ``wall_ms`` less the clock offset
the boot's receipts prove (the offset nearest 0 that every record's anchor and
covering receipt allow, if within the tolerance; none when they allow 0 or
contradict each other).

- **trusted**: the placed time lies within the bounds that exist. A record is
  untrusted (``time_untrusted``) only when its time provably lies outside them;
  it then keeps its claimed ``wall_ms``.
- **proven** (:func:`proven`): trusted, both bounds exist, and each lies
  within ``proof_bracket_ms`` of the placed time. The receipts then pin the record's
  real time to within the bracket whatever the device's clock and NTP flag say;
  a trusted but unproven record (made while the device was out of contact) is
  not accused, but it proves nothing either.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from itertools import islice
from operator import le
from typing import NamedTuple

from portal.reconcile.model import DeviceLog


class Placed(NamedTuple):
    """Per record of a log, in its order: the time the rules use, and whether it is trusted."""

    times: list[int]
    trusted: list[bool]


def place(log: DeviceLog, tolerance_ms: int) -> Placed:
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
        offsets = _receipt_offsets(
            log, {boot[i] for i in unsynced if boot[i] not in anchors}, tolerance_ms
        )
        for i in unsynced:
            near = anchors.get(boot[i])
            if not near:
                # No synced reference: the claim, corrected by the clock offset the
                # receipts prove for this boot (0 when they allow the claim as it is).
                candidate[i] = wall[i] - offsets.get(boot[i], 0)
                continue
            k = bisect_left(near, i)
            j = near[k] if k < len(near) else -1
            if k > 0 and (j < 0 or mono[i] - mono[near[k - 1]] <= mono[j] - mono[i]):
                j = near[k - 1]
            candidate[i] = wall[j] + (mono[i] - mono[j]) // 1_000_000
    tol = tolerance_ms
    trusted = [
        (lo is None or c >= lo - tol) and (hi is None or c <= hi + tol)
        for c, lo, hi in zip(candidate, log.anchor_ms, log.covered_ms, strict=True)
    ]
    times = [c if t else w for c, t, w in zip(candidate, trusted, wall, strict=True)]
    return Placed(times, trusted)


def _receipt_offsets(log: DeviceLog, boots: set[str], limit_ms: int) -> dict[str, int]:
    """Per boot without a synced record: the device clock's offset nearest 0 that every
    receipt of the boot allows, if it is at most ``limit_ms``.

    A record was made after its anchor's ``server_ms`` and before its covering
    receipt's, so the offset (claimed minus real time) is at least ``wall - covered``
    and at most ``wall - anchor`` for each record. A device that never syncs (no NTP)
    but uploads often is thereby placed within its upload interval of the truth, not
    its clock's error. Bounds that contradict each other by less than ``limit_ms``
    (jitter) meet in the middle; by more (a clock stepped inside the boot) they leave
    the claim as it is, for the trust check to judge.
    """
    if not boots:
        return {}
    low: dict[str, int] = {}
    high: dict[str, int] = {}
    for b, w, lo, hi in zip(log.boot, log.wall_ms, log.anchor_ms, log.covered_ms, strict=True):
        if b not in boots:
            continue
        if hi is not None and (b not in low or w - hi > low[b]):
            low[b] = w - hi
        if lo is not None and (b not in high or w - lo < high[b]):
            high[b] = w - lo
    out = {}
    for b in boots:
        least, most = low.get(b), high.get(b)
        if least is not None and most is not None and least > most:
            if least - most > limit_ms:
                continue  # contradictory: no single offset explains the boot
            offset = (least + most) // 2  # a jitter of the portal's clock readings
        else:
            offset = least if least is not None and least > 0 else 0
            offset = most if most is not None and most < 0 else offset
        if 0 < abs(offset) <= limit_ms:
            out[b] = offset
    return out


def proven(log: DeviceLog, placed: Placed, proof_bracket_ms: int, at: list[int]) -> list[bool]:
    """For the records at positions ``at``: trusted, with both receipts within the bracket."""
    times, trusted, lows, highs = placed.times, placed.trusted, log.anchor_ms, log.covered_ms
    out = []
    for i in at:
        lo, hi, t = lows[i], highs[i], times[i]
        out.append(
            trusted[i]
            and lo is not None
            and hi is not None
            and lo >= t - proof_bracket_ms
            and hi <= t + proof_bracket_ms
        )
    return out


# Receipts newer than a record's anchor, each signed more than the tolerance before the
# record's time, that make the anchor stale: one may be an answer the device never got
# (lost at the start of an outage); a second is a further answer after it.
STALE_ANSWERS = 2


def stale_anchors(log: DeviceLog, times: list[int], tolerance_ms: int, at: list[int]) -> list[bool]:
    """For the records at positions ``at`` (ascending): the anchor is older than a receipt
    the device provably had.

    The device had a receipt when (a) an earlier record of its chain already
    named it or a newer one (an anchor never goes backwards along seq), or
    (b) the portal answered the device at least :data:`STALE_ANSWERS` times
    after the anchor's receipt, all more than ``tolerance_ms`` before the
    record's time (``log.receipt_ms``). An anchor of ``""`` counts as older
    than every receipt; it is honest only before the first one.
    """
    if not at:
        return []
    anchors, receipts, tol = log.anchor_ms, log.receipt_ms, tolerance_ms
    # (a) at C speed for the usual chain, whose anchors never go back: then none of its
    # records is stale by (a), and only (b) is left to ask.
    named = list(filter(None, anchors))  # receipt times are positive
    first = next((k for k, a in enumerate(anchors) if a is not None), len(anchors))
    backwards = not all(map(le, named, islice(named, 1, None))) or None in anchors[first:]
    newest, upto = -1, 0  # the newest anchor named by the records before ``upto``
    out = []
    for i in at:
        anchor = anchors[i]
        if backwards:
            if i > upto:
                newest = max(newest, max(filter(None, anchors[upto:i]), default=-1))
                upto = i
            if newest >= 0 and (anchor is None or anchor < newest):
                out.append(True)
                continue
        if not receipts or (anchor is not None and anchor >= times[i] - tol):
            out.append(False)  # no receipt can lie between the anchor and the read
            continue
        after = 0 if anchor is None else bisect_right(receipts, anchor)
        out.append(bisect_left(receipts, times[i] - tol) - after >= STALE_ANSWERS)
    return out
