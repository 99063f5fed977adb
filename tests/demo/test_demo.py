"""The demo's scenario, shortened: the real programs find the fraud and clear the honest club."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    data = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [sys.executable, "-m", "demo", "--quick", "--json", "--data-dir", str(data)],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("QATYSU_")},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    summary: dict[str, object] = json.loads(lines[-1])
    summary["data_dir"] = str(data)
    summary["stdout"] = done.stdout
    return summary


def test_fraud_at_nur_is_found(demo_run: dict[str, object]) -> None:
    today = demo_run["today"]
    assert isinstance(today, dict)
    nur = today["by_center"]["nur"]
    # Six collected cards tapped in a burst behind a shut door; two more confirmed.
    assert nur.get("suspect") == 6, nur
    assert nur.get("confirmed_without_presence") == 2, nur
    assert nur.get("verified", 0) == 0, nur
    assert {"card_burst", "no_door_passage"} <= set(today["reasons_by_center"]["nur"])
    assert today["kzt_at_risk"] == 8 * 2500


def test_honest_alatau_is_clean(demo_run: dict[str, object]) -> None:
    today = demo_run["today"]
    assert isinstance(today, dict)
    alatau = today["by_center"]["alatau"]
    # Every confirmed child tapped behind an open door, some during a network outage.
    assert alatau.get("verified") == 5, alatau
    assert alatau.get("present_not_confirmed") == 1, alatau  # one parent forgot
    assert set(alatau) == {"verified", "present_not_confirmed"}, alatau
    assert today["reasons_by_center"].get("alatau", []) == []


def test_history_reconciled_and_nothing_left_running(demo_run: dict[str, object]) -> None:
    month = demo_run["month"]
    assert isinstance(month, dict)
    # Reconciled with the default margin: most generated lessons are honest.
    verified = month["by_status"].get("verified", 0)
    assert verified > 4 * month["by_status"].get("confirmed_without_presence", 0), month
    assert month["kzt_at_risk"] > 0  # the generator injects fraud
    data = Path(str(demo_run["data_dir"]))
    assert (data / "report-today.html").stat().st_size > 0
    # The daemons and the portal are gone: their sockets and ports are closed.
    assert not list(data.glob("agent-*/control.sock"))
    assert not _processes_mentioning(str(data))


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone meanwhile
        if any(text in arg for arg in args):
            found.append(" ".join(args))
    return found
