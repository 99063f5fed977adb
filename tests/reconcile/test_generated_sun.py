"""The synthetic city's SUN option: real SUN messages under the portal's own card keys."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from portal.cli import main


def test_a_sun_center_s_reads_are_proven_by_its_cards(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--data-dir", str(tmp_path / "data")]
    city = ["generate-city", "--centers", "2", "--days", "3", "--from", "2024-06-03"]
    assert main([*base, *city, "--sun-centers", "1"]) == 0
    assert "56 SUN cards at 1 centers" in capsys.readouterr().out
    assert main([*base, "cards", "list"]) == 0
    assert capsys.readouterr().out.count("ntag424-sun") == 56
    period = ["--from", "2024-06-03", "--to", "2024-06-05", "--format", "json"]
    assert main([*base, "reconcile", *period]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    checks = Counter(
        read["card"] and read["card"]["check"]
        for row in rows
        if row["center_id"] == "C001"
        for read in row["evidence"]["records"]
    )
    # Every read at the SUN center carries a message that checks with the keys the
    # portal derives from its card master (replays: backdated fabrications' collateral;
    # None: a read of a UID that is no card of this city).
    assert checks["proven"] >= 0.9 * checks.total() > 0, checks
    assert "not_authenticated" not in checks, checks
    assert any(r["center_id"] == "C001" and r["status"] == "verified" for r in rows)
    # The other center's cards are UID cards, not registered: nothing to prove.
    other = [r for r in rows if r["center_id"] == "C002"]
    assert other and all(
        read["card"] is None
        for r in other
        for read in r["evidence"]["records"]
        if not read["uid"].startswith("04") or len(read["uid"]) != 14
    )


def test_more_sun_centers_than_centers_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["--data-dir", str(tmp_path / "d"), "generate-city", "--centers", "1", "--sun-centers", "2"]
    )
    assert code == 2
    assert "--sun-centers" in capsys.readouterr().err
