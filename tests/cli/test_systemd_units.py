"""The units pass `systemd-analyze verify` and score low in `security --offline=true`.

`verify` refuses a unit whose ExecStart= program does not exist, so each test
checks a copy pointing at a stand-in script. The agent's unit serves every
profile (no per-profile drop-in): the tests at the end check that
it lets the hardware libraries and the device drivers through.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

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


def test_agent_verifies_and_scores_at_most_2_5(tmp_path: Path) -> None:
    stand_in(tmp_path, "qatysu-agent.service")
    done = analyze(tmp_path, "verify", "qatysu-agent.service")
    assert done.returncode == 0, done.stderr
    assert exposure(tmp_path, "qatysu-agent.service") <= 2.5


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
    assert settings["Environment"] == "LG_WD=/run/qatysu"  # lgpio's pipes: not among records
    assert settings["SupplementaryGroups"].split() == ["gpio", "spi", "dialout"]
    assert "PrivateDevices" not in settings  # it would hide /dev/spidev* and /dev/gpiochip*
    assert "ProtectClock" not in settings  # it would filter the adjtimex() the agent reads
    assert "\nSystemCallFilter=@system-service adjtimex\n" in text


# --- what the unit lets through to the hardware -------------------------------


def unit_settings(name: str = "qatysu-agent.service") -> list[tuple[str, str]]:
    text = (UNITS / name).read_text()
    pairs = []
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            pairs.append((key, value))
    return pairs


def proc_mount_options(settings: list[tuple[str, str]]) -> str:
    """The options systemd gives the service's /proc for ProtectProc= and ProcSubset=."""
    values = dict(settings)
    options = []
    hidepid = values.get("ProtectProc", "default")
    if hidepid != "default":
        options.append(f"hidepid={hidepid}")
    if values.get("ProcSubset", "all") == "pid":
        options.append("subset=pid")
    return ",".join(options) or "defaults"


# A Raspberry Pi 4's /proc/cpuinfo: the machine running the tests is no Pi, so its
# kernel's text stands in for the board's. It is laid over /proc/cpuinfo only if
# the service's /proc shows that file at all: hiding it is the failure we catch.
PI_CPUINFO = Path(__file__).with_name("data") / "pi4-cpuinfo"

PROBE = r"""
import json, os, subprocess, sys, warnings
options, cpuinfo = sys.argv[1], sys.argv[2]
subprocess.run(["mount", "-t", "proc", "-o", options, "proc", "/proc"], check=True)
seen = {p: os.path.exists(p) for p in ("/proc/cpuinfo", "/proc/sys/kernel/random/boot_id")}
if seen["/proc/cpuinfo"]:
    subprocess.run(["mount", "--bind", cpuinfo, "/proc/cpuinfo"], check=True)
from agent.clock import _read_boot_id
from agent.exceptions import HardwareError
from agent.hardware.gpio import make_pin_factory
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        make_pin_factory()
        error = ""
    except HardwareError as exc:
        error = str(exc)
print(json.dumps({
    "seen": seen,
    "boot_id": _read_boot_id(),
    "fallbacks": [str(w.message) for w in caught],
    "error": error,
}))
"""


def probe_under(options: str) -> dict[str, object]:
    """gpiozero's own pin factory selection and the boot id, in a /proc mounted so."""
    import json
    import sys

    unshare = require_tool("unshare")
    if os.geteuid() != 0:
        pytest.skip("mounting a /proc with the unit's options needs root (CI runs as root)")
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    done = subprocess.run(
        [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "--",
            sys.executable,
            "-c",
            PROBE,
            options,
            str(PI_CPUINFO),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def hidden_by(result: dict[str, object]) -> list[str]:
    """What the hardware libraries and the clock needed but could not see."""
    problems = []
    fallbacks = " | ".join(str(f) for f in result["fallbacks"])  # type: ignore[attr-defined]
    if any(s in fallbacks for s in ("Pi revision", "/proc/cpuinfo", "/proc/device-tree")):
        problems.append(f"gpiozero cannot tell the board: {fallbacks}")
    if str(result["boot_id"]).startswith("process-"):
        problems.append("no kernel boot id: every restart would look like a new boot")
    return problems


def test_the_units_proc_shows_what_gpiozero_and_the_boot_id_need() -> None:
    options = proc_mount_options(unit_settings())
    result = probe_under(options)
    assert hidden_by(result) == [], options
    # gpiozero got past the board check to the device nodes (no lgpio on this
    # machine, no /dev/gpiomem on a non-Pi): the unit's DeviceAllow= covers those.
    assert "/dev/gpiomem" in " ".join(result["fallbacks"]), result  # type: ignore[arg-type]


def test_the_same_probe_catches_proc_subset_pid() -> None:
    result = probe_under(proc_mount_options([("ProtectProc", "invisible"), ("ProcSubset", "pid")]))
    problems = hidden_by(result)
    assert len(problems) == 2 and "cannot tell the board" in problems[0], result


# The names the kernel's drivers give their majors in /proc/devices, from their
# sources: what a DeviceAllow=char-NAME must match for each device class.
KERNEL_MAJOR_NAMES = {
    # drivers/spi/spidev.c: register_chrdev(SPIDEV_MAJOR, "spi", ...)
    "spidev": ("spi",),
    # drivers/gpio/gpiolib.h: GPIOCHIP_NAME "gpiochip"
    "gpiochip": ("gpiochip",),
    # drivers/char/raspberrypi-gpiomem.c: "gpiomem" (Pi 0-4), the DT chardev-name
    # gpiomem0..gpiomem4 (Pi 5); drivers/char/broadcom/bcm2835-gpiomem.c before 6.1
    "gpiomem": ("gpiomem", "gpiomem0", "gpiomem4", "bcm2835-gpiomem"),
    # amba-pl011.c dev_name "ttyAMA"; 8250_core.c dev_name "ttyS"
    "uart": ("ttyAMA", "ttyS"),
    # usb-serial.c name "ttyUSB"; cdc-acm.c name "ttyACM"
    "ttyUSB": ("ttyUSB", "ttyACM"),
}


def device_allow_patterns() -> list[str]:
    patterns = []
    for key, value in unit_settings():
        if key == "DeviceAllow":
            spec = value.split()[0]
            assert spec.startswith("char-"), f"DeviceAllow={value}: not a driver name"
            patterns.append(spec.removeprefix("char-"))
    return patterns


def test_every_device_allow_names_a_real_major_and_every_class_is_allowed() -> None:
    from fnmatch import fnmatchcase

    from agent.config.profiles import list_profiles

    patterns = device_allow_patterns()
    known = [name for names in KERNEL_MAJOR_NAMES.values() for name in names]
    for pattern in patterns:  # systemd matches char-NAME against /proc/devices with fnmatch
        assert any(fnmatchcase(name, pattern) for name in known), f"char-{pattern} matches nothing"
    classes = {c for p in list_profiles() for c in p.device_classes} | {"gpiomem"}
    assert classes <= set(KERNEL_MAJOR_NAMES), classes - set(KERNEL_MAJOR_NAMES)
    for device_class in classes:
        for name in KERNEL_MAJOR_NAMES[device_class]:
            assert any(fnmatchcase(name, p) for p in patterns), f"{device_class}: {name} refused"


def test_this_kernels_proc_devices_agrees_where_it_has_the_drivers() -> None:
    from fnmatch import fnmatchcase

    text = Path("/proc/devices").read_text()
    chars = text.split("Block devices:")[0].splitlines()[1:]
    present = {line.split()[1] for line in chars if len(line.split()) == 2}
    ours = {n for names in KERNEL_MAJOR_NAMES.values() for n in names} & present
    assert "ttyS" in present  # every x86 and Pi kernel has the 8250 driver: the table's form
    for name in ours:
        assert any(fnmatchcase(name, p) for p in device_allow_patterns()), name


def test_usb_serial_drivers_load_at_boot_so_late_readers_are_allowed() -> None:
    lines = (UNITS / "qatysu-modules-load.conf").read_text().splitlines()
    modules = [line for line in lines if line and not line.startswith("#")]
    assert modules == ["usbserial", "cdc_acm"]
