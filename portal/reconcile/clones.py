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

from itertools import compress, islice
from operator import lt, ne

from portal.reconcile.model import DeviceLog

# Record types an honest boot may start with (recovery declares losses before the boot).
_BOOT_START = frozenset({"boot", "gap"})


def log_signs(log: DeviceLog, placed: list[int]) -> list[tuple[int, int]]:
    """Spans of the chain where another machine's records show (seq order).

    Written with C-level iteration (``map``/``compress``): it runs over every record.
    """
    boot, mono, types = log.boot, log.mono_ns, log.type
    n = len(boot)
    # Where the boot id changes: the starts of runs of one boot id.
    starts = [0, *compress(range(1, n), map(ne, islice(boot, 1, None), boot))] if n else []
    spans: list[tuple[int, int]] = []
    last: dict[str, int] = {}  # boot id -> index of the last record of its latest run
    for k, a in enumerate(starts):
        b = starts[k + 1] if k + 1 < len(starts) else n  # this run is [a, b)
        boot_id = boot[a]
        j = last.get(boot_id)
        if a:
            if j is not None:
                spans.append((placed[j], placed[a]))  # an earlier boot id came back
            elif types[a] not in _BOOT_START:
                spans.append((placed[a - 1], placed[a]))  # a new boot without its boot record
        back = compress(range(a + 1, b), map(lt, islice(mono, a + 1, b), islice(mono, a, b - 1)))
        spans.extend((placed[i - 1], placed[i]) for i in back)  # mono went back in a boot
        last[boot_id] = b - 1
    return [(min(x, y), max(x, y)) for x, y in spans]


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
