"""``qatysu-portal import`` and ``reconcile`` end to end, every output format."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook

from portal.cli import main
from portal.settings import Settings
from portal.state import open_portal
from portal.synthetic.feed import IngestUplink
from portal.synthetic.generator import CityConfig, generate

T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, str]:
    root = tmp_path_factory.mktemp("cli")
    portal = open_portal(Settings(data_dir=root / "data"))
    config = CityConfig(
        centers=1, days=7, seed=21, injected=0.4, upload_s=3600, first=date(2024, 2, 26)
    )
    city, _ = generate(config, IngestUplink(portal.engine, portal.key, now=T0))
    portal.close()
    for kind, data in (
        ("schedule", city.schedule_csv()),
        ("roster", city.roster_csv()),
        ("confirmations", city.confirmations_csv()),
    ):
        (root / f"{kind}.csv").write_bytes(data)
    return root / "data", root, config.first.isoformat(), city.last.isoformat()


def test_import_then_reconcile_in_every_format(
    data_dir: tuple[Path, Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    data, root, first, last = data_dir
    base = ["--data-dir", str(data)]
    for kind in ("schedule", "roster", "confirmations"):
        assert main([*base, "import", kind, str(root / f"{kind}.csv")]) == 0
        assert "added" in capsys.readouterr().out
    assert main([*base, "import", "schedule", str(root / "schedule.csv")]) == 0
    assert ", 0 added, 0 changed," in capsys.readouterr().out

    period = ["--from", first, "--to", last]
    assert main([*base, "reconcile", *period, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["from"], doc["to"]) == (first, last)
    assert doc["rows"] and doc["totals"]["centers"][0]["center_id"] == "C001"
    for fmt in ("csv", "xlsx", "html", "table"):
        out = root / f"report.{fmt}"
        english = ["--lang", "en"]
        assert (
            main([*base, "reconcile", *period, "--format", fmt, *english, "--output", str(out)])
            == 0
        )
        assert out.stat().st_size > 0
    book = load_workbook(root / "report.xlsx")
    assert book.sheetnames == ["All lessons", "Centers", "Groups"]
    assert book["All lessons"].max_row == len(doc["rows"]) + 1
    assert (root / "report.csv").read_text().count("\n") == len(doc["rows"]) + 1
    assert '<html lang="en">' in (root / "report.html").read_text()
    russian = root / "report-ru.csv"
    assert main([*base, "reconcile", *period, "--format", "csv", "--output", str(russian)]) == 0
    assert russian.read_bytes().startswith("\ufeffchild_id;".encode())  # the portal's ru
    assert main([*base, "reconcile", *period, "--format", "csv", "--csv-delimiter", ",",
                 "--output", str(russian)]) == 0  # fmt: skip
    assert russian.read_bytes().startswith(b"child_id,")
    assert "Rows not verified" in (root / "report.table").read_text()


def test_a_bad_import_is_one_line_and_exit_1(
    data_dir: tuple[Path, Path, str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data, _, _, _ = data_dir
    bad = tmp_path / "conf.csv"
    bad.write_bytes(
        "child_id;group_id;date;confirmed_at;signer\nK00001;C001-G1;31.02.2024;"
        "2024-02-29 20:00;Мама\n".encode()
    )
    assert main(["--data-dir", str(data), "import", "confirmations", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"qatysu-portal: error: {bad}:2:3: date: '31.02.2024' is not a date "
        "(YYYY-MM-DD or DD.MM.YYYY)"
    ]


def test_reconcile_rejects_a_reversed_period(
    data_dir: tuple[Path, Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    data, _, _, _ = data_dir
    code = main(
        ["--data-dir", str(data), "reconcile", "--from", "2024-03-02", "--to", "2024-03-01"]
    )
    assert code == 2
    assert "--to" in capsys.readouterr().err


def test_generate_city_feeds_the_real_ingest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--data-dir", str(tmp_path / "data")]
    assert (
        main(
            [
                *base,
                "generate-city",
                "--centers",
                "1",
                "--days",
                "2",
                "--csv-dir",
                str(tmp_path / "csv"),
            ]
        )
        == 0
    )
    assert "1 centers" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == [
        "confirmations.csv",
        "roster.csv",
        "schedule.csv",
    ]
    assert main([*base, "verify"]) == 0  # every stored chain re-verifies, signatures included


def test_generate_city_with_devices_that_never_sync(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = ["--data-dir", str(tmp_path / "data")]
    assert (
        main(
            [
                *base,
                "generate-city",
                "--centers",
                "1",
                "--days",
                "3",
                "--from",
                "2024-06-03",
                "--unsynced",
                "1",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main([*base, "reconcile", "--from", "2024-06-03", "--to", "2024-06-05", "--format", "json"])
        == 0
    )
    rows = json.loads(capsys.readouterr().out)["rows"]
    reads = [e for r in rows for e in r["evidence"]["records"]]
    # The NTP flag never set, the receipts still pin the connected device's reads:
    # proven (an injected forged clock aside), whatever `synced` says.
    proven = sum(e["time_proven"] for e in reads) / len(reads)
    assert proven > 0.9, proven
    assert all(e["time_trusted"] for e in reads if e["time_proven"])
