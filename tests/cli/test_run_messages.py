"""`qatysu run` on a machine without GPIO: one line, no gpiozero warnings with paths.

A child process, as systemd runs it: the warnings went to its stderr (the journal).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol import public_key_b64
from tests.cli.conftest import Run, Site, make_site
from tests.support.tools import missing


def _enroll_offline(site: Site, run: Run) -> None:
    for key, value in (
        ("portal.url", "https://portal.invalid"),
        ("portal.public_key", public_key_b64(Ed25519PrivateKey.generate())),
        ("portal.device_id", "dev-1"),
    ):
        assert run("--config", site.config, "config", "set", key, value).code == 0


@pytest.fixture(autouse=True)
def _not_a_pi() -> None:
    if Path("/proc/device-tree/model").exists():
        missing("this machine has a device tree (a Pi?): gpiozero may find GPIO here")


def test_run_with_pins_but_no_gpio_is_one_line(tmp_path: Path, short_dir: Path, run: Run) -> None:
    site = make_site(tmp_path, short_dir, run, "pi-rdm6300-uart")
    _enroll_offline(site, run)
    done = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(site.config), "run"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert "PinFactoryFallback" not in done.stderr and "site-packages" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("qatysu: error:")]
    # One line: what is configured, what gpiozero tried (its reasons vary by machine).
    assert len(errors) == 1
    assert errors[0].startswith(
        f"qatysu: error: {site.config}: doors, tamper or feedback pins are configured, but "
        "this machine has no GPIO gpiozero can use (tried lgpio: "
    )
    assert errors[0].endswith("): run the agent on the Raspberry Pi, or remove those pins")


def test_run_without_pins_says_so_once(sim_site: Site, run: Run) -> None:
    _enroll_offline(sim_site, run)
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "--config", str(sim_site.config), "run"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert agent.stderr is not None
    lines = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            line = agent.stderr.readline()
            lines.append(line)
            if "running as device dev-1" in line or not line:
                break
    finally:
        agent.send_signal(signal.SIGTERM)
        rest = agent.communicate(timeout=30)[1]
    text = "".join(lines) + rest
    assert "running as device dev-1" in text
    assert "PinFactoryFallback" not in text and "site-packages" not in text
    assert text.count("no GPIO here and none configured: running without pins") == 1
