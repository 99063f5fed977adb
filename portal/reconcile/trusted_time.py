"""Trusted time per record (SPEC section 2), for one device's log in seq order.

A record was made after its anchor receipt's ``server_ms`` and before the
``server_ms`` of the first receipt that covered it (each bound widened by the
tolerance). Its candidate time is its own ``wall_ms`` when it was made while
``synced``; otherwise the ``wall_ms`` of the nearest synced record of the same
boot (by monotonic distance, before or after) plus the ``mono_ns`` difference.
The time is trusted when a candidate exists and lies within the bounds; else
the record keeps its claimed ``wall_ms`` and is ``time_untrusted``.
"""

from __future__ import annotations

from portal.reconcile.model import DeviceLog


def place(log: DeviceLog, tolerance_ms: int) -> tuple[list[int], list[bool]]:
    """``(times, trusted)`` for every record of ``log``, in its order."""
    n = len(log)
    wall, synced, boot, mono = log.wall_ms, log.synced, log.boot, log.mono_ns
    anchor, covered = log.anchor_ms, log.covered_ms
    times = list(wall)
    trusted = [False] * n

    # Nearest synced record of the same boot, before (forward pass) and after (backward).
    before: list[int] = [-1] * n
    last = -1
    last_boot = None
    for i in range(n):
        if boot[i] != last_boot:
            last, last_boot = -1, boot[i]
        if synced[i]:
            last = i
        before[i] = last
    after = -1
    after_boot = None
    for i in range(n - 1, -1, -1):
        if boot[i] != after_boot:
            after, after_boot = -1, boot[i]
        if synced[i]:
            after = i
        if synced[i]:
            candidate = wall[i]
        else:
            j = _nearer(before[i], after, mono, mono[i])
            if j < 0:
                continue
            candidate = wall[j] + (mono[i] - mono[j]) // 1_000_000
        low = anchor[i]
        if low is not None and candidate < low - tolerance_ms:
            continue
        high = covered[i]
        if high is not None and candidate > high + tolerance_ms:
            continue
        times[i] = candidate
        trusted[i] = True
    return times, trusted


def _nearer(a: int, b: int, mono: list[int], at: int) -> int:
    if a < 0:
        return b
    if b < 0:
        return a
    return a if at - mono[a] <= mono[b] - at else b
