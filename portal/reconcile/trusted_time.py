"""Trusted time per record (docs/reconciliation.md), for one device's log in seq order.

A record was made after its anchor receipt's ``server_ms`` and before the
``server_ms`` of the first receipt that covered it (each bound widened by the
tolerance). Its candidate time is its own ``wall_ms`` when it was made while
``synced``; otherwise the ``wall_ms`` of the nearest synced record of the same
boot (by monotonic distance, before or after) plus the ``mono_ns`` difference.
The time is trusted when a candidate exists and lies within the bounds; else
the record keeps its claimed ``wall_ms`` and is ``time_untrusted``.

Portal-bracketed time (an extension, decision 0810): a record with no synced
reference at all is still trusted at its claimed ``wall_ms`` when both bounds
exist, lie at most ``bracket_ms`` apart, and hold the claim (± tolerance).
Both bounds are portal clock readings the device cannot move, so the claim is
checked to within the bracket whatever the device's NTP flag says. A
``bracket_ms`` of 0 turns the extension off (receipts-only).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

from portal.reconcile.model import DeviceLog

_NONE = -(2**62)


def place(log: DeviceLog, tolerance_ms: int, bracket_ms: int = 0) -> tuple[list[int], list[bool]]:
    """``(times, trusted)`` for every record of ``log``, in its order."""
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
                candidate[i] = _NONE
                continue
            k = bisect_left(near, i)
            j = near[k] if k < len(near) else -1
            if k > 0 and (j < 0 or mono[i] - mono[near[k - 1]] <= mono[j] - mono[i]):
                j = near[k - 1]
            candidate[i] = wall[j] + (mono[i] - mono[j]) // 1_000_000
    tol = tolerance_ms
    lows, highs = log.anchor_ms, log.covered_ms
    trusted = [
        c != _NONE and (lo is None or c >= lo - tol) and (hi is None or c <= hi + tol)
        for c, lo, hi in zip(candidate, lows, highs, strict=True)
    ]
    if bracket_ms > 0 and unsynced:
        for i in unsynced:
            if candidate[i] != _NONE:
                continue  # a synced reference exists: docs/reconciliation.md decides alone
            lo, hi = lows[i], highs[i]
            if (
                lo is not None
                and hi is not None
                and hi - lo <= bracket_ms
                and lo - tol <= wall[i] <= hi + tol
            ):
                candidate[i] = wall[i]
                trusted[i] = True
    times = [c if t else w for c, t, w in zip(candidate, trusted, wall, strict=True)]
    return times, trusted
