"""Lessons in the portal's zone; Asia/Almaty moved from UTC+6 to UTC+5 on 2024-03-01."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from portal.exceptions import PortalConfigError
from portal.reconcile.lessons import ScheduleEntry, check_zone, lessons, load_zone


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@pytest.mark.parametrize(
    ("day", "utc_hour"),
    [(date(2024, 2, 15), 9), (date(2024, 6, 1), 10)],  # 15:00 local = 09:00 UTC (+6), 10:00 (+5)
)
def test_a_lesson_at_15_00_local_on_each_side_of_the_change(day: date, utc_hour: int) -> None:
    zone = load_zone("Asia/Almaty")
    entry = ScheduleEntry("G1", "C1", day.isoweekday(), time(15, 0), time(16, 30), 3000)
    [lesson] = lessons([entry], day, day, zone)
    assert _utc(lesson.start_ms) == datetime(day.year, day.month, day.day, utc_hour, tzinfo=UTC)
    assert lesson.end_ms - lesson.start_ms == 90 * 60_000


def test_zone_data_without_the_2024_change_is_refused() -> None:
    stale = ZoneInfo("Etc/GMT-6")  # UTC+6 all year: what pre-2024a data says of Almaty
    with pytest.raises(PortalConfigError, match=r"Asia/Almaty.*2024-06-01.*tzdata"):
        check_zone(stale, "Asia/Almaty")


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(PortalConfigError, match="Mars/Olympus"):
        load_zone("Mars/Olympus")


def test_weekdays_and_validity_pick_the_dates() -> None:
    zone = load_zone("Asia/Almaty")
    entries = [
        ScheduleEntry("G1", "C1", 1, time(15), time(16), 1000, valid_to=date(2024, 6, 9)),
        ScheduleEntry("G1", "C1", 1, time(17), time(18), 2000, valid_from=date(2024, 6, 10)),
        ScheduleEntry("G2", "C1", 3, time(15), time(16), 1000),
    ]
    got = [
        (x.group_id, x.date, x.price_kzt)
        for x in lessons(entries, date(2024, 6, 3), date(2024, 6, 12), zone)
    ]
    assert got == [
        ("G1", date(2024, 6, 3), 1000),
        ("G2", date(2024, 6, 5), 1000),
        ("G1", date(2024, 6, 10), 2000),
        ("G2", date(2024, 6, 12), 1000),
    ]


def _stale_tzdata(root: Path) -> Path:
    """A ``tzdata`` package whose Asia/Almaty is the pre-2024a one: UTC+6 all year."""
    import tzdata

    pkg = root / "tzdata"
    (pkg / "zoneinfo" / "Asia").mkdir(parents=True)
    (pkg / "__init__.py").write_text('IANA_VERSION = "2023c"\n')
    (pkg / "zoneinfo" / "__init__.py").write_text("")
    (pkg / "zoneinfo" / "Asia" / "__init__.py").write_text("")
    real = Path(tzdata.__file__).parent / "zoneinfo" / "Etc" / "GMT-6"
    shutil.copyfile(real, pkg / "zoneinfo" / "Asia" / "Almaty")
    return root


@pytest.mark.parametrize(
    "command",
    [["serve", "--port", "1"], ["reconcile", "--from", "2024-06-01", "--to", "2024-06-02"]],
)
def test_the_portal_refuses_to_start_on_stale_zone_data(tmp_path: Path, command: list[str]) -> None:
    # The zone data is the world here: a stale tzdata ahead on the path, our code as is.
    fake = _stale_tzdata(tmp_path / "site")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(fake), str(Path(__file__).resolve().parents[2])]),
    }
    env.pop("QATYSU_PORTAL_TZ", None)
    done = subprocess.run(
        [sys.executable, "-m", "portal", "--data-dir", str(tmp_path / "data"), *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Asia/Almaty" in done.stderr and "tzdata 2024a" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
