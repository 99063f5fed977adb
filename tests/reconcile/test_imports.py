"""CSV imports (docs/reconciliation.md): encodings, delimiters, normalisation, one-line errors."""

from __future__ import annotations

import pytest

from portal.exceptions import ImportFileError
from portal.reconcile.imports import (
    parse_confirmations,
    parse_roster,
    parse_schedule,
)

CENTERS = {"C1", "C2"}
GROUPS = {"G1": "C1", "G2": "C2"}
CHILDREN = {"K1": {"G1"}, "K2": {"G1", "G2"}}


def roster(text: str, encoding: str = "utf-8") -> list:
    return parse_roster(text.encode(encoding), "roster.csv", centers=CENTERS, groups=GROUPS)


def test_roster_with_bom_semicolons_cyrillic_and_separators() -> None:
    text = (
        "\ufeffchild_id;badge_uid;center_id;group_id;child_name\r\n"
        "K1;04:a1:b2:c3;C1;G1;Айгерим Ахметова\r\n"
        "K1;04-A1-B2-C4-D5-E6-F7;C1;G1;Айгерим Ахметова\r\n"
        "K2;04 a1 b2 c5;C2;G2;Әлия Төлеуова\r\n"
    )
    rows = parse_roster(text.encode("utf-8"), "r.csv", centers=CENTERS, groups=GROUPS)
    assert [(r.child_id, r.badge_uid, r.child_name) for r in rows] == [
        ("K1", "04A1B2C3", "Айгерим Ахметова"),
        ("K1", "04A1B2C4D5E6F7", "Айгерим Ахметова"),
        ("K2", "04A1B2C5", "Әлия Төлеуова"),
    ]


def test_exact_repeats_are_taken_once() -> None:
    rows = roster("child_id,badge_uid,center_id,group_id\nK1,04a1b2c3,C1,G1\nK1,04A1B2C3,C1,G1\n")
    assert len(rows) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "child,badge_uid,center_id,group_id\nK1,04a1b2c3,C1,G1\n",
            r"^roster\.csv:1:1: unknown column 'child'; "
            r"expected child_id,badge_uid,center_id,group_id",
        ),
        (
            "child_id,badge_uid,center_id\nK1,04a1b2c3,C1\n",
            r"^roster\.csv:1:4: missing column 'group_id'",
        ),
        (
            "child_id,badge_uid,center_id,group_id\nK1,04a1b2c3,C9,G1\n",
            r"^roster\.csv:2:3: center_id: unknown center 'C9'",
        ),
        (
            "child_id,badge_uid,center_id,group_id\nK1,04a1b2c3,C1,G7\n",
            r"^roster\.csv:2:4: group_id: group 'G7' is unknown",
        ),
        (
            "child_id,badge_uid,center_id,group_id\nK1,04a1b2c3,C1,G1\nK1,nothex!,C1,G1\n",
            r"^roster\.csv:3:2: badge_uid: badge_uid 'nothex!' is not hexadecimal",
        ),
        (
            "child_id,badge_uid,center_id,group_id\nK1,04a1b2c3,C1,G1\nK2,04:A1:B2:C3,C1,G1\n",
            r"^roster\.csv:3:2: badge_uid 04A1B2C3 is already the badge of child 'K1' \(line 2\)",
        ),
        (
            "child_id,badge_uid,center_id,group_id\nK1,04a1b2c3,C1\n",
            r"^roster\.csv:2:4: 3 fields, the header has 4",
        ),
    ],
)
def test_bad_roster_files(text: str, message: str) -> None:
    with pytest.raises(ImportFileError, match=message):
        roster(text)


def test_wrong_encoding_names_line_and_column() -> None:
    text = "child_id;badge_uid;center_id;group_id;child_name\nK1;04a1b2c3;C1;G1;Айгерим\n"
    with pytest.raises(ImportFileError, match=r"^roster\.csv:2:5: not UTF-8 \(byte 0xc0\).*cp1251"):
        roster(text, "cp1251")


SCHEDULE_HEAD = "group_id,center_id,weekday,start,end,price_kzt\n"


def schedule(body: str) -> list:
    return parse_schedule(
        (SCHEDULE_HEAD + body).encode(), "schedule.csv", centers=CENTERS, groups=GROUPS
    )


def test_schedule_rows() -> None:
    [e] = schedule("G3,C1,1,15:00,16:30,3 500\n")
    assert (e.group_id, e.weekday, e.start.hour, e.end.minute, e.price_kzt) == (
        "G3",
        1,
        15,
        30,
        3500,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("G1,C1,1,25:00,26:00,3000\n", r"^schedule\.csv:2:4: start: '25:00' is not a local time"),
        ("G1,C1,8,15:00,16:00,3000\n", r"^schedule\.csv:2:3: weekday: '8' is not a weekday"),
        ("G1,C1,1,16:00,15:00,3000\n", r"^schedule\.csv:2:5: end: 15:00 is not after start 16:00"),
        (
            "G1,C2,1,15:00,16:00,3000\n",
            r"^schedule\.csv:2:2: center_id: group 'G1' belongs to "
            r"center 'C1'",
        ),
        (
            "G1,C1,1,15:00,16:00,3000\nG1,C1,1,15:00,16:00,3500\n",
            r"^schedule\.csv:3:1: group, weekday and valid_from \('G1', 1, None\) repeats line 2",
        ),
        ("G1,C1,1,15:00,16:00,lots\n", r"^schedule\.csv:2:6: price_kzt: 'lots' is not a whole"),
    ],
)
def test_bad_schedule_files(body: str, message: str) -> None:
    with pytest.raises(ImportFileError, match=message):
        schedule(body)


CONF_HEAD = "child_id,group_id,date,confirmed_at,signer\n"


def confirmations(body: str) -> list:
    return parse_confirmations(
        (CONF_HEAD + body).encode(), "conf.csv", children=CHILDREN, groups=GROUPS
    )


def test_confirmation_dates_in_iso_and_russian_forms() -> None:
    rows = confirmations(
        "K1,G1,2024-06-03,2024-06-03 20:15,Мама\nK2,G2,04.06.2024,04.06.2024 21:00,Папа\n"
    )
    assert [(c.date.isoformat(), c.confirmed_at) for c in rows] == [
        ("2024-06-03", "2024-06-03T20:15:00"),
        ("2024-06-04", "2024-06-04T21:00:00"),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "K1,G1,2024-13-03,2024-06-03 20:15,x\n",
            r"^conf\.csv:2:3: date: '2024-13-03' is not a date",
        ),
        (
            "K1,G1,2024-06-03,soon,x\n",
            r"^conf\.csv:2:4: confirmed_at: 'soon' is not a date and time",
        ),
        ("K1,G9,2024-06-03,2024-06-03 20:15,x\n", r"^conf\.csv:2:2: group_id: unknown group 'G9'"),
        ("K9,G1,2024-06-03,2024-06-03 20:15,x\n", r"^conf\.csv:2:1: child_id: unknown child 'K9'"),
        (
            "K1,G2,2024-06-03,2024-06-03 20:15,x\n",
            r"^conf\.csv:2:2: group_id: child 'K1' is not in",
        ),
        (
            "K1,G1,2024-06-03,2024-06-03 20:15,x\nK1,G1,2024-06-03,2024-06-03 20:16,x\n",
            r"^conf\.csv:3:1: child, group and date .* repeats line 2 with other data",
        ),
    ],
)
def test_bad_confirmation_files(body: str, message: str) -> None:
    with pytest.raises(ImportFileError, match=message):
        confirmations(body)


def test_empty_file() -> None:
    with pytest.raises(ImportFileError, match=r"^conf\.csv:1:1: empty file"):
        parse_confirmations(b"", "conf.csv", children=CHILDREN, groups=GROUPS)


def test_a_lesson_longer_than_lesson_max_min_is_refused_unless_allowed() -> None:
    body = "G1,C1,1,15:00,18:00,3000\nG1,C1,2,08:00,20:00,3000\n"
    with pytest.raises(
        ImportFileError,
        match=r"^schedule\.csv:3:5: end: a lesson of 720 min \(08:00-20:00\) is longer than "
        r"lesson_max_min \(180\); import with --allow-long",
    ):
        schedule(body)  # 15:00-18:00 is exactly 180 min: admitted
    data = (SCHEDULE_HEAD + body).encode()
    admitted = parse_schedule(data, "s.csv", centers=CENTERS, groups=GROUPS, allow_long=True)
    assert [e.weekday for e in admitted] == [1, 2]
    with pytest.raises(ImportFileError, match=r"^s\.csv:2:5: end: a lesson of 180 min"):
        parse_schedule(data, "s.csv", centers=CENTERS, groups=GROUPS, lesson_max_min=179)


def test_confirmed_at_in_iso_with_and_without_offset_excel_and_empty() -> None:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Asia/Almaty")
    rows = parse_confirmations(
        (
            CONF_HEAD + "K1,G1,2024-06-03,2024-06-03T16:45:00+05:00,Мама\n"
            "K1,G1,2024-06-04,2024-06-04T11:45Z,Мама\n"
            "K1,G1,2024-06-05,05.06.2024 16:45,Мама\n"
            "K1,G1,2024-06-06,2024-06-06 16:45:00,Мама\n"
            "K1,G1,2024-06-07,,Мама\n"
        ).encode(),
        "conf.csv",
        children=CHILDREN,
        groups=GROUPS,
        zone=zone,
    )
    assert [c.confirmed_at for c in rows] == [
        "2024-06-03T16:45:00+05:00",
        "2024-06-04T11:45:00+00:00",
        "2024-06-05T16:45:00",
        "2024-06-06T16:45:00",
        "",
    ]
    # 16:45 local (UTC+5 in 2024) is 11:45 UTC: every form gives the same instant.
    day_ms = [1717415100000 + n * 86_400_000 for n in range(4)]
    assert [c.confirmed_ms for c in rows] == [*day_ms, None]


@pytest.mark.parametrize("value", ["2024-06-03 25:00", "03/06/2024 20:00", "2024-06-03T20:00+5"])
def test_an_unreadable_confirmed_at_names_its_line_and_column(value: str) -> None:
    with pytest.raises(ImportFileError, match=r"^conf\.csv:3:4: confirmed_at: .* is not a date"):
        confirmations(f"K1,G1,2024-06-03,2024-06-03 20:15,x\nK1,G1,2024-06-04,{value},x\n")
