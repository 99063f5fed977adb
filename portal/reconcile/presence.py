"""A child is in one place at a time: the city-wide pass over every center's rows.

The engine reconciles one center at a time; whether a child was also present
somewhere else is only known once every center is done, so this pass runs once
over all rows (docs/reconciliation.md, ``double_presence``). Pure: it sets
:class:`~portal.reconcile.rules.RowFacts` fields of the rows and re-derives their
reasons and status. It sorts each child's rows and each badge's reads once, so it
costs O(rows log rows) plus the reads.

- Two rows of one child whose lessons overlap (one starts before the other ends;
  lessons that only touch, 15:00-16:00 and 16:00-17:00, do not overlap, whatever
  the 30-minute margin of their windows) in different groups:

  - one of them has no read: that one is ``elsewhere`` (the child was read at the
    other lesson), the other stands;
  - both at one center and not both confirmed: nothing (a child enrolled in two
    groups of one center is read once for both windows; only the claimed one is paid);
  - otherwise both are ``double_presence`` (read at two centers at once, or confirmed
    twice for one time).

- One badge read at devices of two centers less than ``travel_min_ms`` apart: every
  row holding one of those reads is ``double_presence``.
- A confirmed row without a read whose lesson starts at most the margin after the end
  of the child's earlier lesson at the same center, that day, read there, is
  ``carried``: the child stayed for the next lesson after one tap. It is unverifiable,
  not accused.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from portal.reconcile import rules
from portal.reconcile.model import ReconcileSettings

if TYPE_CHECKING:
    from portal.reconcile.engine import Row


def one_place(
    rows: Sequence[Row],
    settings: ReconcileSettings,
    taps: Sequence[tuple[str, int, str]] = (),
) -> None:
    """Mark double presence, presence elsewhere and carried rows; re-judge those rows.

    ``taps`` are every read of the city as (uid, time, center), also those that belong
    to no row (a card read at a center where its child has no lesson then).
    """
    changed: set[int] = set()
    _overlaps(rows, settings, changed)
    _travel(rows, settings, changed, taps)
    for k in changed:
        _rejudge(rows[k], settings)


def _overlaps(rows: Sequence[Row], settings: ReconcileSettings, changed: set[int]) -> None:
    by_child: dict[str, list[tuple[int, int, int]]] = defaultdict(list)  # start, end, row
    for k, row in enumerate(rows):
        if row.lesson is not None and row.facts is not None:
            by_child[row.child_id].append((row.lesson.start_ms, row.lesson.end_ms, k))
    margin = settings.margin_s * 1000
    for spans in by_child.values():
        if len(spans) < 2:
            continue
        spans.sort()
        active: list[tuple[int, int, int]] = []  # lessons not ended at the current start
        for pos, (start, _end, k) in enumerate(spans):
            active = [a for a in active if a[1] > start]
            for a in active:
                if rows[a[2]].group_id != rows[k].group_id:
                    _pair(rows, a[2], k, changed)
            facts = rows[k].facts
            if facts is not None and facts.confirmed and not rows[k].reads:
                _carry(rows, spans, pos, margin, changed)
            active.append(spans[pos])


def _pair(rows: Sequence[Row], j: int, k: int, changed: set[int]) -> None:
    a, b = rows[j], rows[k]
    fa, fb = a.facts, b.facts
    assert fa is not None and fb is not None
    if bool(a.reads) != bool(b.reads):
        unread, idx = (a, j) if not a.reads else (b, k)
        assert unread.facts is not None
        unread.facts.elsewhere = True
        changed.add(idx)
        return
    if a.center_id == b.center_id and not (fa.confirmed and fb.confirmed):
        return
    fa.double_presence = fb.double_presence = True
    changed.update((j, k))


def _carry(
    rows: Sequence[Row], spans: list[tuple[int, int, int]], pos: int, margin: int, changed: set[int]
) -> None:
    """``carried`` when an earlier lesson of the child that day, at the same center, was
    read cleanly and ended at most ``margin`` before this one starts."""
    start, _, k = spans[pos]
    row = rows[k]
    assert row.lesson is not None and row.facts is not None
    for p_start, p_end, j in reversed(spans[:pos]):
        prev = rows[j]
        if prev.lesson is None or prev.lesson.date != row.lesson.date:
            break  # spans are in time order: no earlier lesson of that day is left
        if (
            prev.center_id == row.center_id
            and p_start < start
            and p_end <= start <= p_end + margin
            and prev.facts is not None
            and prev.facts.clean
        ):
            row.facts.carried = True
            changed.add(k)
            return


def _travel(
    rows: Sequence[Row],
    settings: ReconcileSettings,
    changed: set[int],
    taps: Sequence[tuple[str, int, str]],
) -> None:
    """Rows holding a read of a badge made at another center less than travel_min apart."""
    holders: dict[tuple[str, int, str], list[int]] = defaultdict(list)  # read: its rows
    for k, row in enumerate(rows):
        if row.facts is None:
            continue
        for read, _ in row.reads:
            holders[(read.uid, read.time_ms, row.center_id)].append(k)
    seen = set(taps)
    reads = [(u, t, c) for u, t, c in taps] + [key for key in holders if key not in seen]
    if not reads:
        return
    reads.sort()
    limit = settings.travel_min_ms
    hit = [False] * len(reads)
    # Forward, then backward: the nearest earlier (later) read at another center is the
    # latest one of the most recent center, or of the center before it.
    for order in (range(len(reads)), range(len(reads) - 1, -1, -1)):
        uid = ""
        last: tuple[str, int] = ("", 0)  # center and time of the latest read seen
        other: tuple[str, int] | None = None  # the latest at a center other than last's
        for i in order:
            u, t, center = reads[i]
            if u != uid:
                uid, last, other = u, (center, t), None
                continue
            near = last if last[0] != center else other
            if near is not None and abs(t - near[1]) < limit:
                hit[i] = True
            if center != last[0]:
                other = last
            last = (center, t)
    for i, flag in enumerate(hit):
        if not flag:
            continue
        for k in holders.get(reads[i], ()):
            facts = rows[k].facts
            assert facts is not None
            facts.double_presence = True
            changed.add(k)


def _rejudge(row: Row, settings: ReconcileSettings) -> None:
    """The row's reasons and status from its facts, as the engine derives them."""
    f = row.facts
    assert f is not None
    union = () if f.clean else rules.ordered(x for _, rs in row.reads for x in rs)
    fired = [r.name for r in rules.ROW_REASONS if r.check(f, settings)]
    row.reasons = rules.ordered([*union, *fired]) if fired else union
    row.status = rules.status(f, row.reasons)
