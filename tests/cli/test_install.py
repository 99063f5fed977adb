"""scripts/install.sh in a throwaway root: never this machine's /etc, users or systemctl."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_config

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install.sh"
QATYSU = str(Path(sys.executable).with_name("qatysu"))


class Target:
    """A fake Raspberry Pi OS root: boot config, passwd and group."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "boot/firmware").mkdir(parents=True)
        (path / "etc").mkdir()
        self.boot = path / "boot/firmware/config.txt"
        self.boot.write_text("[pi4]\narm_boost=1\n[all]\ndtparam=audio=on\n")
        (path / "etc/group").write_text("root:x:0:\ndialout:x:20:\n")
        (path / "etc/passwd").write_text("root:x:0:0::/root:/bin/bash\n")

    def install(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(SCRIPT),
                "--root",
                str(self.path),
                "--no-pip",
                "--qatysu",
                QATYSU,
                "--python",
                sys.executable,
                "--no-system",
                *args,
            ],
            capture_output=True,
            text=True,
            input=stdin,
            check=False,
            timeout=120,
        )


@pytest.fixture
def target(tmp_path: Path) -> Target:
    return Target(tmp_path / "root")


def test_install_lays_out_venv_units_config_key_and_boot_config(target: Target) -> None:
    done = target.install("--profile", "pi5-rc522", "--yes")
    assert done.returncode == 0, done.stderr
    root = target.path
    assert (root / "opt/qatysu/venv/pyvenv.cfg").is_file()
    unit = (root / "etc/systemd/system/qatysu-agent.service").read_text()
    assert "ExecStart=/opt/qatysu/venv/bin/qatysu --config /etc/qatysu/agent.toml run" in unit
    assert "DeviceAllow=char-spi rw\nDeviceAllow=char-gpiochip rw\n" in unit
    assert not (root / "etc/systemd/system/qatysu-agent.service.d").exists()
    modules = (root / "etc/modules-load.d/qatysu.conf").read_text()
    assert modules.endswith("usbserial\ncdc_acm\n")
    config = load_config(root / "etc/qatysu/agent.toml")
    assert config.device.state_dir == Path("/var/lib/qatysu")  # as the device sees it
    assert config.readers[0].driver == "mfrc522"
    key = root / "var/lib/qatysu/device.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    # The boot config gained the line, in an [all] section, and the old one is kept.
    text = target.boot.read_text()
    assert text.endswith("[all]\ndtparam=spi=on\n")
    (backup,) = target.boot.parent.glob("config.txt.qatysu-backup-*")
    assert backup.read_text() == "[pi4]\narm_boost=1\n[all]\ndtparam=audio=on\n"
    # System steps are printed, never run: the groups the unit needs and the user.
    out = done.stdout
    assert f"would run: groupadd --root {root} --system gpio" in out
    assert f"would run: groupadd --root {root} --system spi" in out
    assert "groupadd --root" in out and "--system dialout" not in out  # dialout exists
    assert "--groups gpio,spi,dialout qatysu" in out
    assert f"would run: systemctl --root={root} enable qatysu-agent.service" in out
    assert "sudo reboot" in out


def test_install_again_changes_nothing_it_already_did(target: Target) -> None:
    assert target.install("--profile", "pi5-rc522", "--yes").returncode == 0
    config = target.path / "etc/qatysu/agent.toml"
    key = target.path / "var/lib/qatysu/device.key"
    before = (config.read_text(), key.read_text(), target.boot.read_text())
    again = target.install("--profile", "pi5-rc522", "--yes")
    assert again.returncode == 0, again.stderr
    assert (config.read_text(), key.read_text(), target.boot.read_text()) == before
    assert "kept the existing" in again.stdout
    assert "already has what profile pi5-rc522 needs" in again.stdout
    assert len(list(target.boot.parent.glob("config.txt.qatysu-backup-*"))) == 1


def test_boot_config_is_only_shown_without_consent(target: Target) -> None:
    before = target.boot.read_text()
    done = target.install("--profile", "pi-rdm6300-uart", stdin="y\n")  # not a terminal
    assert done.returncode == 0, done.stderr
    assert "    enable_uart=1\n    dtoverlay=disable-bt\n" in done.stdout
    assert "not changed: add them to /boot/firmware/config.txt by hand" in done.stdout
    assert target.boot.read_text() == before
    unit = (target.path / "etc/systemd/system/qatysu-agent.service").read_text()
    assert "DeviceAllow=char-ttyAMA rw" in unit and "DeviceAllow=char-ttyS rw" in unit
    done = target.install("--profile", "pi-rdm6300-uart", "--no-boot-config")
    assert "not changed (--no-boot-config)" in done.stdout
    assert target.boot.read_text() == before


def test_other_prefix_user_and_portal_unit(target: Target) -> None:
    done = target.install(
        "--profile", "pi-usb-serial", "--prefix", "/srv/q", "--user", "club", "--with-portal"
    )
    assert done.returncode == 0, done.stderr
    units = target.path / "etc/systemd/system"
    agent = (units / "qatysu-agent.service").read_text()
    assert "ExecStart=/srv/q/venv/bin/qatysu " in agent
    assert "\nUser=club\n" in agent and "\nGroup=club\n" in agent
    assert (
        "ExecStart=/srv/q/venv/bin/qatysu-portal " in (units / "qatysu-portal.service").read_text()
    )
    assert "DeviceAllow=char-ttyUSB rw" in agent
    assert "--groups gpio,spi,dialout club" in done.stdout


def test_existing_user_is_added_to_the_groups(target: Target) -> None:
    (target.path / "etc/passwd").write_text("root:x:0:0::/root:/bin/bash\nqatysu:x:990:990::/:/x\n")
    done = target.install("--profile", "pi5-rc522", "--no-boot-config")
    assert (
        f"would run: usermod --root {target.path} --append --groups gpio,spi,dialout qatysu"
        in done.stdout
    )
    assert f"would run: chown -R 990:990 {target.path}/var/lib/qatysu" in done.stdout


def test_unknown_profile_is_a_usage_error_and_writes_no_config(target: Target) -> None:
    done = target.install("--profile", "pi9-rc522")
    assert done.returncode == 2
    assert "unknown profile 'pi9-rc522'" in done.stderr
    assert not (target.path / "etc/qatysu").exists()
    assert not (target.path / "etc/systemd").exists()


def test_usage_errors(target: Target) -> None:
    assert target.install().returncode == 2  # no --profile
    done = target.install("--profile", "pi5-rc522", "--prefix", "opt")
    assert done.returncode == 2 and "must be an absolute path" in done.stderr
    assert target.install("--bogus").returncode == 2
    helped = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, check=False)
    assert helped.returncode == 0 and "--uninstall" in helped.stdout


def test_uninstall_removes_units_and_venv_and_keeps_config_and_records(target: Target) -> None:
    assert target.install("--profile", "pi5-rc522", "--yes").returncode == 0
    done = target.install("--uninstall")
    assert done.returncode == 0, done.stderr
    root = target.path
    assert not (root / "etc/systemd/system/qatysu-agent.service").exists()
    assert not (root / "etc/systemd/system/qatysu-agent.service.d").exists()
    assert not (root / "opt/qatysu").exists()
    assert (root / "etc/qatysu/agent.toml").is_file()
    assert (root / "var/lib/qatysu/device.key").is_file()
    assert f"would run: systemctl --root={root} disable qatysu-agent.service" in done.stdout


def test_script_is_executable_and_shell_clean() -> None:
    assert os.access(SCRIPT, os.X_OK)
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0
