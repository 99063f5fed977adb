"""Signs that two machines hold one device key (``device_clone_suspected``), as time spans.

One device is one machine running one chain: its boot ids follow each other (a
new one starts with its ``boot`` record, or the ``gap`` records its recovery
writes first) and never come back, ``mono_ns`` never goes backwards within a
boot, and its signed uploads come from one network address at a time. A second
machine with a copy of the key that continues the chain (from ``/cursor``)
breaks one of these unless it copies boot id and monotonic clock exactly and
uploads from the same address. Each sign is the span of time it covers, in the
placed time of the records (log signs) or the portal's clock (address signs);
a lesson window overlapping one taints the device's reads there
(docs/reconciliation.md, docs/threat-model.md). Plain data, no I/O.
"""

from __future__ import annotations

from portal.reconcile.model import DeviceLog

# Record types an honest boot may start with (recovery declares losses before the boot).
_BOOT_START = frozenset({"boot", "gap"})


def log_signs(log: DeviceLog, placed: list[int]) -> list[tuple[int, int]]:
    """Spans of the chain where another machine's records show (seq order)."""
    boot, mono, types = log.boot, log.mono_ns, log.type
    spans: list[tuple[int, int]] = []
    last: dict[str, int] = {}  # boot id -> index of its latest record so far
    for i, b in enumerate(boot):
        j = last.get(b)
        if i and b != boot[i - 1]:
            if j is not None:
                spans.append((placed[j], placed[i]))  # an earlier boot id came back
            elif types[i] not in _BOOT_START:
                spans.append((placed[i - 1], placed[i]))  # a new boot without its boot record
        if j is not None and mono[i] < mono[j]:
            spans.append((placed[j], placed[i]))  # the monotonic clock went back in a boot
        last[b] = i
    return [(min(a, c), max(a, c)) for a, c in spans]


def address_signs(
    uploads: list[tuple[int, int, str]], switches: int, window_ms: int
) -> list[tuple[int, int]]:
    """Spans where the uploads switched address ``switches`` times within ``window_ms``.

    ``uploads`` are runs ``(first_ms, last_ms, address)`` in order. One change
    (a new DHCP lease, LTE) is one switch; a failover link that comes back is two;
    two machines uploading in turn switch at every turn.
    """
    if switches < 1:
        return []
    spans = []
    for k in range(switches, len(uploads)):
        first = k - switches + 1  # the run after the first of the switches
        if uploads[k][0] - uploads[first][0] <= window_ms:
            spans.append((uploads[first - 1][1], uploads[k][0]))
    return spans
