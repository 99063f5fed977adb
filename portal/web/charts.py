"""The pictures of the pages as shapes for an inline SVG (pure geometry, no I/O).

The server draws them: :func:`lesson_timeline` lays out a lesson's evidence in
time (one row per child, the door, the heartbeats), :func:`weekly_trend` a
center's child-lessons per ISO week. The templates turn the shapes into SVG
elements with Jinja2's escaping, so names and reasons stay text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from portal.reconcile.engine import Row
from portal.reconcile.index import DoorEvent
from portal.reconcile.risk import iso_week
from portal.reconcile.rules import AT_RISK, UNVERIFIABLE, VERIFIED

LABEL_W = 200  # the names' column
PLOT_W = 720
ROW_H = 30
AXIS_H = 28
PAD = 8


@dataclass(frozen=True, slots=True)
class Shape:
    """One SVG element: ``kind`` is rect, circle, line, path or text; ``cls`` its class."""

    kind: str
    cls: str
    x: float = 0
    y: float = 0
    w: float = 0  # rect width, circle radius, line/path end x
    h: float = 0  # rect height, line end y
    text: str = ""  # a text's content
    title: str = ""  # the tooltip (<title>), also what a test reads
    d: str = ""  # a path's geometry
    data: Mapping[str, str] = field(default_factory=dict)  # data-* attributes


@dataclass(frozen=True, slots=True)
class Picture:
    width: int
    height: int
    shapes: list[Shape]


@dataclass(frozen=True, slots=True)
class Bracket:
    """What proves a read's time: the receipt it names (before) and the one covering it."""

    anchor_ms: int | None
    covered_ms: int | None


def _ticks(lo: int, hi: int) -> list[int]:
    span = hi - lo
    step = next((s for s in (5, 10, 15, 30, 60, 120) if span / (s * 60_000) <= 10), 240)
    step_ms = step * 60_000
    first = -(-lo // step_ms) * step_ms
    return list(range(first, hi + 1, step_ms))


def _door_spans(doors: Iterable[DoorEvent], lo: int, hi: int) -> list[tuple[int, int, bool]]:
    """(from, to, closed) per open span, by sensor; an open never closed runs to ``hi``."""
    spans: list[tuple[int, int, bool]] = []
    by_sensor: dict[tuple[str, str], list[DoorEvent]] = defaultdict(list)
    for d in sorted(set(doors), key=lambda d: (d.time_ms, d.seq)):
        by_sensor[(d.device_id, d.sensor)].append(d)
    for events in by_sensor.values():
        opened: int | None = None
        for k, d in enumerate(events):
            if d.state == "open" and opened is None:
                opened = d.time_ms
            elif d.state != "open":
                if opened is None and k == 0 and d.time_ms > lo:
                    opened = lo  # its first event closes it: open since before the window
                if opened is not None:
                    spans.append((opened, d.time_ms, True))
                opened = None
        if opened is not None:
            spans.append((opened, hi, False))
    return spans


def lesson_timeline(
    rows: Sequence[Row],
    *,
    window: tuple[int, int],
    heartbeats: Sequence[int],
    brackets: Mapping[tuple[str, int], Bracket],
    names: Mapping[str, str],
    word: Callable[[str], str],
    zone: ZoneInfo,
    door_open_max_ms: int,
) -> Picture:
    """One lesson: the lesson window, door open spans, heartbeats and silences, and a
    row per child with each read (filled when its time is proven), its proven-time
    bracket, and a red mark with the reasons at each read that has any."""
    lo, hi = window
    span = max(1, hi - lo)

    def x(ms: int) -> float:
        return LABEL_W + PLOT_W * (min(max(ms, lo), hi) - lo) / span

    shapes: list[Shape] = []
    n_rows = 2 + len(rows)
    top = PAD
    plot_h = n_rows * ROW_H
    lesson = next((r.lesson for r in rows if r.lesson is not None), None)
    if lesson is not None:
        shapes.append(
            Shape(
                "rect",
                "lesson",
                x(lesson.start_ms),
                top,
                x(lesson.end_ms) - x(lesson.start_ms),
                plot_h,
                title=f"{word('lesson')} {_hm(lesson.start_ms, zone)}–{_hm(lesson.end_ms, zone)}",
            )
        )
    for t in _ticks(lo, hi):
        shapes.append(Shape("line", "tick", x(t), top, x(t), top + plot_h))
        shapes.append(Shape("text", "axis", x(t), top + plot_h + 16, text=_hm(t, zone)))
    # The door row.
    y: float = top
    shapes.append(Shape("text", "label", PAD, y + ROW_H / 2 + 4, text=word("door")))
    for a, b, closed in _door_spans((d for r in rows for d in r.doors), lo, hi):
        held = b - a > door_open_max_ms
        shapes.append(
            Shape(
                "rect",
                "door held" if held else ("door" if closed else "door unclosed"),
                x(a),
                y + 7,
                max(2.0, x(b) - x(a)),
                ROW_H - 14,
                title=f"{word('door_open')} {_hm(a, zone, True)}–{_hm(b, zone, True)}"
                + (f" · {word('door_held_open')}" if held else ""),
            )
        )
    # The heartbeat row, with the silences the coverage found.
    y += ROW_H
    shapes.append(Shape("text", "label", PAD, y + ROW_H / 2 + 4, text=word("heartbeat")))
    coverage = next((r.coverage for r in rows if r.coverage is not None), None)
    for a, b in coverage.silences if coverage else ():
        shapes.append(
            Shape(
                "rect",
                "silence",
                x(a),
                y + 4,
                max(2.0, x(b) - x(a)),
                ROW_H - 8,
                title=f"{word('silence')} {_hm(a, zone, True)}–{_hm(b, zone, True)}",
            )
        )
    for t in heartbeats:
        if lo <= t <= hi:
            shapes.append(
                Shape("line", "beat", x(t), y + 8, x(t), y + ROW_H - 8, title=_hm(t, zone, True))
            )
    # A row per child.
    for row in rows:
        y += ROW_H
        mid = y + ROW_H / 2
        name = names.get(row.child_id, "") or row.child_id
        shapes.append(
            Shape(
                "text",
                f"label child {row.status}",
                PAD,
                mid + 4,
                text=name[:26],
                title=f"{name} ({row.child_id}): {word(row.status)}",
                data={"child": row.child_id},
            )
        )
        for read, reasons in row.reads:
            proof = brackets.get((read.device_id, read.seq))
            if proof is not None and proof.anchor_ms is not None and proof.covered_ms is not None:
                ax, bx = x(proof.anchor_ms), x(proof.covered_ms)
                shapes.append(
                    Shape(
                        "path",
                        "bracket proven" if read.proven else "bracket",
                        d=f"M{ax:.1f},{mid - 6:.1f} v12 M{ax:.1f},{mid:.1f} H{bx:.1f} "
                        f"M{bx:.1f},{mid - 6:.1f} v12",
                        title=f"{word('bracket')} {_hm(proof.anchor_ms, zone, True)}–"
                        f"{_hm(proof.covered_ms, zone, True)}",
                    )
                )
            shapes.append(
                Shape(
                    "circle",
                    "read proven" if read.proven else "read",
                    x(read.time_ms),
                    mid,
                    5,
                    title=f"{name} {_hm(read.time_ms, zone, True)} · {read.reader} · {read.uid}"
                    f" · {word('read_proven' if read.proven else 'read_unproven')}",
                    data={"child": row.child_id, "seq": str(read.seq), "device": read.device_id},
                )
            )
            if reasons:
                rx = x(read.time_ms)
                shapes.append(
                    Shape(
                        "path",
                        "reason",
                        d=f"M{rx:.1f},{mid - 8:.1f} l-5,-8 h10 z",
                        title=", ".join(word(r) for r in reasons),
                        data={"reasons": " ".join(reasons)},
                    )
                )
        if not row.reads:  # a confirmation with no read: say so where the reads would be
            shapes.append(
                Shape(
                    "text",
                    f"no-read {row.status}",
                    LABEL_W + 6,
                    mid + 4,
                    text=word(row.status),
                    data={"child": row.child_id},
                )
            )
        # Reasons of the row that no read carries (a confirmation without a read...).
        at_reads = {r for _, rs in row.reads for r in rs}
        rest = [r for r in row.reasons if r not in at_reads]
        if rest:
            shapes.append(
                Shape(
                    "text",
                    "reason-text",
                    LABEL_W + PLOT_W + 6,
                    mid + 4,
                    text="⚑",
                    title=", ".join(word(r) for r in rest),
                    data={"reasons": " ".join(rest)},
                )
            )
    height = top + plot_h + AXIS_H
    return Picture(LABEL_W + PLOT_W + 40, int(height), shapes)


def _hm(ms: int, zone: ZoneInfo, seconds: bool = False) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=zone).strftime("%H:%M:%S" if seconds else "%H:%M")


@dataclass(frozen=True, slots=True)
class Week:
    week: str
    verified: int
    at_risk: int
    unverifiable: int


def weeks_of(rows: Iterable[Row]) -> list[Week]:
    """Child-lessons per ISO week: verified, at risk, unverifiable (others aside).

    Every week from the first with a row to the last is listed: a week without
    lessons shows as an empty bar, not as no bar at all.
    """
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    days = sorted({row.date for row in rows})
    if days:
        monday = days[0] - timedelta(days=days[0].weekday())
        while monday <= days[-1]:
            counts.setdefault(iso_week(monday), [0, 0, 0])
            monday += timedelta(days=7)
    for row in rows:
        c = counts[iso_week(row.date)]
        if row.status == VERIFIED:
            c[0] += 1
        elif row.status in AT_RISK:
            c[1] += 1
        elif row.status in UNVERIFIABLE:
            c[2] += 1
    return [Week(w, *counts[w]) for w in sorted(counts)]


TREND_W = 640
TREND_H = 180


def weekly_trend(weeks: Sequence[Week], word: Callable[[str], str]) -> Picture:
    """Stacked bars per week: verified at the bottom, then unverifiable, then at risk."""
    base = TREND_H - 30
    top = 10
    peak = max((w.verified + w.at_risk + w.unverifiable for w in weeks), default=0) or 1
    slot = (TREND_W - 50) / max(1, len(weeks))
    bar = min(48.0, slot * 0.7)
    shapes: list[Shape] = [
        Shape("line", "axis-line", 40, base, TREND_W, base),
        Shape("text", "axis", 34, top + 8, text=str(peak), data={"anchor": "end"}),
        Shape("text", "axis", 34, base, text="0", data={"anchor": "end"}),
    ]
    for i, w in enumerate(weeks):
        left = 44 + i * slot + (slot - bar) / 2
        y = float(base)
        for cls, n, key in (
            ("verified", w.verified, "verified"),
            ("unverifiable", w.unverifiable, "unverifiable"),
            ("at-risk", w.at_risk, "at_risk"),
        ):
            h = (base - top) * n / peak
            if n:
                shapes.append(
                    Shape(
                        "rect",
                        f"bar {cls}",
                        left,
                        y - h,
                        bar,
                        h,
                        title=f"{w.week}: {word(key)} {n}",
                        data={"week": w.week, "count": str(n)},
                    )
                )
            y -= h
        shapes.append(
            Shape(
                "text",
                "axis",
                left + bar / 2,
                base + 16,
                text=w.week[5:],
                data={"anchor": "middle"},
            )
        )
    return Picture(TREND_W, TREND_H, shapes)


__all__ = ["Bracket", "Picture", "Shape", "Week", "lesson_timeline", "weekly_trend", "weeks_of"]
