"""The units pass `systemd-analyze verify` and score low in `security --offline=true`.

`verify` refuses a unit whose ExecStart= program does not exist, so each test
checks a copy pointing at a stand-in script; the drop-in is the one
scripts/install.sh writes for each profile.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config.profiles import profile_names
from tests.support.tools import require_tool

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"


def stand_in(unit_dir: Path, name: str, dropin: str = "") -> Path:
    """A copy of ``name`` whose ExecStart= runs an existing stand-in program."""
    program = unit_dir / "stand-in"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    text = (UNITS / name).read_text()
    text, count = re.subn(r"^ExecStart=\S+", f"ExecStart={program}", text, flags=re.M)
    assert count == 1
    unit = unit_dir / name
    unit.write_text(text)
    if dropin:
        (unit_dir / f"{name}.d").mkdir(exist_ok=True)
        (unit_dir / f"{name}.d" / "devices.conf").write_text(dropin)
    return unit


def analyze(unit_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("systemd-analyze")
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:", "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(
        [tool, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=unit_dir,
        check=False,
        timeout=120,
    )


def exposure(unit_dir: Path, name: str) -> float:
    done = analyze(unit_dir, "security", "--offline=true", "--no-pager", name)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert match, done.stdout + done.stderr
    return float(match.group(1))


def dropin_for(profile: str, tmp_path: Path) -> str:
    """The devices.conf scripts/install.sh writes for ``profile``."""
    root = tmp_path / f"root-{profile}"
    (root / "etc").mkdir(parents=True)
    done = subprocess.run(
        [
            str(REPO / "scripts/install.sh"),
            "--root",
            str(root),
            "--no-pip",
            "--python",
            sys.executable,
            "--qatysu",
            str(Path(sys.executable).with_name("qatysu")),
            "--no-system",
            "--no-boot-config",
            "--profile",
            profile,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return (root / "etc/systemd/system/qatysu-agent.service.d/devices.conf").read_text()


@pytest.mark.parametrize("name", ["qatysu-agent.service", "qatysu-portal.service"])
def test_verify_passes(tmp_path: Path, name: str) -> None:
    stand_in(tmp_path, name)
    done = analyze(tmp_path, "verify", name)
    assert done.returncode == 0, done.stderr
    assert name not in done.stderr, done.stderr  # no warning about our unit at all


def test_verify_would_catch_a_missing_program_and_a_typo(tmp_path: Path) -> None:
    unit = stand_in(tmp_path, "qatysu-agent.service")
    unit.write_text(unit.read_text().replace(str(tmp_path / "stand-in"), "/nonexistent/qatysu"))
    done = analyze(tmp_path, "verify", "qatysu-agent.service")
    assert done.returncode != 0 and "/nonexistent/qatysu" in done.stderr
    stand_in(tmp_path, "qatysu-agent.service")
    unit.write_text(unit.read_text().replace("WatchdogSec=", "WatchdocSec="))
    assert "WatchdocSec" in analyze(tmp_path, "verify", "qatysu-agent.service").stderr


@pytest.mark.parametrize("profile", profile_names())
def test_agent_with_each_profiles_dropin_verifies_and_scores_at_most_2_5(
    tmp_path: Path, profile: str
) -> None:
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    stand_in(unit_dir, "qatysu-agent.service", dropin_for(profile, tmp_path))
    done = analyze(unit_dir, "verify", "qatysu-agent.service")
    assert done.returncode == 0, done.stderr
    assert exposure(unit_dir, "qatysu-agent.service") <= 2.5


def test_portal_scores_at_most_1_5(tmp_path: Path) -> None:
    stand_in(tmp_path, "qatysu-portal.service")
    assert exposure(tmp_path, "qatysu-portal.service") <= 1.5


def test_agent_unit_has_what_the_issue_asks() -> None:
    text = (UNITS / "qatysu-agent.service").read_text()
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    assert settings["Type"] == "notify" and settings["Restart"] == "always"
    assert int(settings["WatchdogSec"]) > 0
    for key in ("StateDirectory", "ConfigurationDirectory", "RuntimeDirectory"):
        assert settings[key] == "qatysu"
    assert settings["WorkingDirectory"] == "/var/lib/qatysu"  # writable: the StateDirectory
    assert settings["SupplementaryGroups"].split() == ["gpio", "spi", "dialout"]
    assert "PrivateDevices" not in settings  # it would hide /dev/spidev* and /dev/gpiochip*
    assert "ProtectClock" not in settings  # it would filter the adjtimex() the agent reads
    assert "\nSystemCallFilter=@system-service adjtimex\n" in text
