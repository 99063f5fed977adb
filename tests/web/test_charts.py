"""The pictures' geometry: what the timeline and the trend put where (no browser)."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from portal.reconcile.engine import Row
from portal.reconcile.index import Coverage, DoorEvent, Read
from portal.reconcile.lessons import Lesson
from portal.web import charts

ZONE = ZoneInfo("Asia/Almaty")
START = 1_717_498_800_000  # 2024-06-04 16:00 in Almaty
MIN = 60_000
LESSON = Lesson("G1", "C1", date(2024, 6, 4), START, START + 90 * MIN, 3000)
WINDOW = (START - 30 * MIN, START + 90 * MIN)


def _read(seq: int, at: int, proven: bool = True) -> Read:
    return Read("dev", seq, "r0", "rdm6300", f"UID{seq}", at, at, True, proven=proven)


def _row(
    child: str,
    status: str,
    reads: tuple[tuple[Read, tuple[str, ...]], ...] = (),
    reasons: tuple[str, ...] = (),
    doors: tuple[DoorEvent, ...] = (),
) -> Row:
    coverage = Coverage(*WINDOW, 40, 24, ((START + 20 * MIN, START + 35 * MIN),))
    return Row(
        child, "G1", "C1", LESSON.date, status, reasons, 3000, LESSON, reads, doors, coverage
    )


def _draw(rows: list[Row], door_open_max_ms: int = 70 * MIN, **kw: object) -> charts.Picture:
    return charts.lesson_timeline(
        rows,
        window=WINDOW,
        heartbeats=kw.get("beats", [START, START + 5 * MIN]),  # type: ignore[arg-type]
        brackets=kw.get("brackets", {}),  # type: ignore[arg-type]
        names={"K1": "Айдана <i>", "K2": "Нурлан"},
        word=lambda k: f"«{k}»",
        zone=ZONE,
        door_open_max_ms=door_open_max_ms,
    )


def _of(picture: charts.Picture, cls: str) -> list[charts.Shape]:
    return [s for s in picture.shapes if cls in s.cls.split()]


def test_each_read_sits_in_its_childs_row_at_its_time() -> None:
    burst = ("card_burst",)
    rows = [
        _row("K1", "suspect", ((_read(1, START + 2 * MIN), burst),), reasons=burst),
        _row("K2", "verified", ((_read(2, START - 10 * MIN, proven=False), ()),)),
    ]
    picture = _draw(rows, brackets={("dev", 1): charts.Bracket(START, START + 5 * MIN)})
    reads = _of(picture, "read")
    labels = _of(picture, "child")
    assert [s.data["child"] for s in labels] == ["K1", "K2"]
    assert labels[0].text == "Айдана <i>"  # the template escapes it
    k1, k2 = reads
    assert (k1.data["child"], "proven" in k1.cls) == ("K1", True)
    assert (k2.data["child"], "proven" in k2.cls) == ("K2", False)
    assert k1.y == labels[0].y - 4 and k2.y == labels[1].y - 4  # one row each
    span = WINDOW[1] - WINDOW[0]
    x = charts.LABEL_W + charts.PLOT_W * (START + 2 * MIN - WINDOW[0]) / span
    assert abs(k1.x - x) < 0.01 and k2.x < k1.x
    [mark] = _of(picture, "reason")
    assert mark.data["reasons"] == "card_burst" and mark.title == "«card_burst»"
    [bracket] = _of(picture, "bracket")
    assert "proven" in bracket.cls and bracket.d.startswith(f"M{charts.LABEL_W + 180:.1f},")
    [lesson] = _of(picture, "lesson")
    assert abs(lesson.w - charts.PLOT_W * 90 / 120) < 0.01
    assert len(_of(picture, "beat")) == 2 and len(_of(picture, "silence")) == 1


def test_a_row_without_reads_says_so_and_flags_its_reasons() -> None:
    picture = _draw([_row("K1", "confirmed_without_presence", reasons=("no_door_passage",))])
    [note] = _of(picture, "no-read")
    assert note.text == "«confirmed_without_presence»"
    [flag] = _of(picture, "reason-text")
    assert flag.data["reasons"] == "no_door_passage"
    assert flag.x < picture.width  # inside the picture


def test_door_spans_pair_open_with_closed_per_sensor_and_mark_a_held_door() -> None:
    doors = (
        DoorEvent("dev", "d0", 1, "closed", START - 20 * MIN),  # open since before
        DoorEvent("dev", "d0", 2, "open", START - 5 * MIN),
        DoorEvent("dev", "d0", 3, "closed", START - 4 * MIN),
        DoorEvent("dev", "d1", 4, "open", START + 10 * MIN),  # never closed
    )
    spans = charts._door_spans(doors, *WINDOW)
    assert sorted(spans) == [
        (WINDOW[0], START - 20 * MIN, True),
        (START - 5 * MIN, START - 4 * MIN, True),
        (START + 10 * MIN, WINDOW[1], False),
    ]
    picture = _draw([_row("K1", "verified", doors=doors)], door_open_max_ms=30 * MIN)
    classes = sorted(s.cls for s in _of(picture, "door"))
    assert classes == ["door", "door", "door held"]  # the last one ran 80 min


def test_the_trend_stacks_a_weeks_statuses() -> None:
    rows = [
        _row("K1", "verified"),
        _row("K2", "suspect"),
        _row("K3", "confirmed_device_offline"),
        _row("K4", "present_not_confirmed"),  # neither paid nor at risk: not drawn
    ]
    weeks = charts.weeks_of(rows)
    assert weeks == [charts.Week("2024-W23", 1, 1, 1)]
    bars = _of(charts.weekly_trend(weeks, str), "bar")
    assert [b.data["count"] for b in bars] == ["1", "1", "1"]
    assert bars[0].y > bars[1].y > bars[2].y  # verified at the bottom, at risk on top


def test_the_trend_lists_a_week_without_lessons_between_two_with() -> None:
    early = _row("K1", "verified")
    late = Row("K1", "G1", "C1", date(2024, 6, 20), "suspect", (), 3000, LESSON)
    weeks = charts.weeks_of([early, late])
    assert weeks == [
        charts.Week("2024-W23", 1, 0, 0),
        charts.Week("2024-W24", 0, 0, 0),
        charts.Week("2024-W25", 0, 1, 0),
    ]


def test_the_svg_template_escapes_names_titles_and_data() -> None:
    from portal.web.pages import TEMPLATES

    picture = charts.Picture(
        100,
        50,
        [
            charts.Shape(
                "text", "label", 1, 2, text="<i>x</i>", title='"a"&b', data={"child": '"><script>'}
            ),
            charts.Shape("circle", "read", 3, 4, 5, title="<b>"),
        ],
    )
    macro = TEMPLATES.env.get_template("_svg.html").module.picture  # type: ignore[attr-defined]
    svg = str(macro(picture, "t", "<label>"))
    assert "<i>" not in svg and "&lt;i&gt;x&lt;/i&gt;" in svg
    assert "<script>" not in svg and 'data-child="&#34;&gt;&lt;script&gt;"' in svg
    assert "<title>&lt;b&gt;</title>" in svg and 'aria-label="&lt;label&gt;"' in svg
