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
    assert not (root / "usr/local/bin/qatysu").exists()
    assert not (root / "etc/modules-load.d/qatysu.conf").exists()
    assert (root / "etc/qatysu/agent.toml").is_file()
    assert (root / "var/lib/qatysu/device.key").is_file()
    assert f"would run: systemctl --root={root} disable qatysu-agent.service" in done.stdout


def test_script_is_executable_and_shell_clean() -> None:
    assert os.access(SCRIPT, os.X_OK)
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0


def test_qatysu_goes_on_path_and_keeps_lgpio_files_out_of_the_callers_folder(
    target: Target, tmp_path: Path
) -> None:
    assert target.install("--profile", "pi5-rc522", "--no-boot-config").returncode == 0
    wrapper = target.path / "usr/local/bin/qatysu"
    assert os.access(wrapper, os.X_OK)
    text = wrapper.read_text()
    assert "exec /opt/qatysu/venv/bin/qatysu " in text
    # Run it against a stand-in venv whose qatysu prints where lgpio would write.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/qatysu").write_text('#!/bin/sh\necho "$LG_WD $*"\n')
    (venv / "bin/qatysu").chmod(0o755)
    runnable = tmp_path / "qatysu"
    runnable.write_text(text.replace("/opt/qatysu/venv", str(venv)))
    runnable.chmod(0o755)
    here = tmp_path / "technician-home"
    here.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "LG_WD"}
    done = subprocess.run(
        [str(runnable), "status"], cwd=here, env=env, capture_output=True, text=True, check=True
    )
    lg_wd, arg = done.stdout.split()
    assert arg == "status" and Path(lg_wd).resolve() != here.resolve()
    done = subprocess.run(
        [str(runnable)], cwd=here, env={**env, "LG_WD": "/x"}, capture_output=True, text=True
    )
    assert done.stdout.strip() == "/x"  # an explicit LG_WD wins


def test_pip_bindings_without_a_compiler_stop_with_what_to_install(
    target: Target, tmp_path: Path
) -> None:
    # This machine's tools, minus any C compiler.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        for tool in Path(folder).iterdir():
            name = tool.name
            if name.startswith(("gcc", "cc", "c89", "c99")) or (bin_dir / name).exists():
                continue
            (bin_dir / name).symlink_to(tool)
    done = subprocess.run(
        [
            str(SCRIPT),
            "--root",
            str(target.path),
            "--python",
            sys.executable,
            "--qatysu",
            QATYSU,
            "--no-system",
            "--bindings",
            "pip",
            "--profile",
            "pi5-rc522",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "PATH": str(bin_dir)},
    )
    assert done.returncode == 1
    assert "apt-get install gcc python3-dev" in done.stderr and "--bindings system" in done.stderr
    assert not (target.path / "opt/qatysu").exists()  # stopped before anything was made


def test_system_bindings_take_the_distributions_packages_and_the_venv_sees_them(
    target: Target,
) -> None:
    done = target.install("--profile", "pi5-rc522", "--bindings", "system", "--no-boot-config")
    assert done.returncode == 0, done.stderr
    assert (
        "would run: apt-get install -y python3-venv python3-spidev python3-gpiozero "
        "python3-lgpio python3-rpi-lgpio" in done.stdout
    )
    cfg = (target.path / "opt/qatysu/venv/pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in cfg
    # The pi extra is the distribution's: only the pure-Python lock is for pip.
    assert "not installing requirements/agent.lock nor" in done.stdout
    assert "agent-pi.lock" not in done.stdout


def test_a_venv_left_without_pip_is_rebuilt(target: Target, tmp_path: Path) -> None:
    venv = target.path / "opt/qatysu/venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    done = subprocess.run(
        [
            str(SCRIPT),
            "--root",
            str(target.path),
            "--python",
            sys.executable,
            "--qatysu",
            QATYSU,
            "--no-system",
            "--extras",
            "",
            "--profile",
            "pi-usb-serial",
            "--pip-args",
            f"--no-index --find-links {empty}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert "rebuilding /opt/qatysu/venv: it has no pip" in done.stdout, done.stderr
    assert (
        subprocess.run(
            [str(venv / "bin/python"), "-m", "pip", "--version"], capture_output=True, check=False
        ).returncode
        == 0
    )
    assert done.returncode == 1  # then pip finds no wheel in the empty folder, and says so


def test_another_profile_over_an_existing_config_is_refused_or_reinitialised(
    target: Target,
) -> None:
    assert target.install("--profile", "pi5-rc522", "--no-boot-config").returncode == 0
    config = target.path / "etc/qatysu/agent.toml"
    before = config.read_text()
    assert (target.path / "etc/qatysu/profile").read_text() == "pi5-rc522\n"
    done = target.install("--profile", "pi-rdm6300-uart", "--no-boot-config")
    assert done.returncode == 2
    assert (
        "--profile pi-rdm6300-uart: /etc/qatysu/agent.toml was made from profile pi5-rc522; "
        "re-run with --profile pi5-rc522, or add --reinit" in done.stderr
    )
    assert config.read_text() == before
    # An install from before the marker: the readers' drivers tell.
    (target.path / "etc/qatysu/profile").unlink()
    done = target.install("--profile", "pi-rdm6300-uart", "--no-boot-config")
    assert done.returncode == 2 and "reads with mfrc522, profile pi-rdm6300-uart with rdm6300" in (
        done.stderr
    )
    key = (target.path / "var/lib/qatysu/device.key").read_text()
    done = target.install("--profile", "pi-rdm6300-uart", "--no-boot-config", "--reinit")
    assert done.returncode == 0, done.stderr
    assert load_config(config).readers[0].driver == "rdm6300"
    (backup,) = config.parent.glob("agent.toml.qatysu-backup-*")
    assert backup.read_text() == before
    assert (target.path / "var/lib/qatysu/device.key").read_text() == key
    assert (target.path / "etc/qatysu/profile").read_text() == "pi-rdm6300-uart\n"


def test_with_portal_installs_the_portal_extra(target: Target) -> None:
    done = target.install("--profile", "pi-usb-serial", "--with-portal", "--no-boot-config")
    assert done.returncode == 0, done.stderr
    assert "requirements/portal.lock" in done.stdout and "[pi,portal]" in done.stdout


def test_pi5_uart_profile_gets_its_own_boot_line(target: Target) -> None:
    done = target.install("--profile", "pi5-rdm6300-uart", "--yes")
    assert done.returncode == 0, done.stderr
    assert target.boot.read_text().endswith("[all]\ndtparam=uart0=on\n")
    assert "disable-bt" not in target.boot.read_text()
    config = load_config(target.path / "etc/qatysu/agent.toml")
    assert config.readers[0].port == "/dev/ttyAMA0"  # type: ignore[attr-defined]


def test_serial_console_is_shown_and_removed_only_with_consent(target: Target) -> None:
    cmdline = target.boot.parent / "cmdline.txt"
    original = "console=serial0,115200 console=tty1 root=PARTUUID=1-02 rootfstype=ext4 rootwait\n"
    cmdline.write_text(original)
    done = target.install("--profile", "pi-rdm6300-uart", stdin="y\n")  # not a terminal
    assert done.returncode == 0, done.stderr
    assert (
        "/boot/firmware/cmdline.txt puts a login console on the reader's UART: "
        "remove console=serial0,115200" in done.stdout
    )
    assert cmdline.read_text() == original
    done = target.install("--profile", "pi-rdm6300-uart", "--yes")
    assert done.returncode == 0, done.stderr
    assert cmdline.read_text() == "console=tty1 root=PARTUUID=1-02 rootfstype=ext4 rootwait\n"
    (backup,) = cmdline.parent.glob("cmdline.txt.qatysu-backup-*")
    assert backup.read_text() == original
    # An SPI profile leaves the console alone.
    cmdline.write_text(original)
    other = Target(target.path.parent / "spi-root")
    (other.boot.parent / "cmdline.txt").write_text(original)
    done = other.install("--profile", "pi5-rc522", "--yes")
    assert "login console" not in done.stdout
    assert (other.boot.parent / "cmdline.txt").read_text() == original


def test_the_technicians_login_joins_the_service_group_for_status(target: Target) -> None:
    passwd = target.path / "etc/passwd"
    passwd.write_text(passwd.read_text() + "pi:x:1000:1000::/home/pi:/bin/bash\n")
    done = target.install("--profile", "pi5-rc522", "--no-boot-config", "--admin", "pi")
    assert done.returncode == 0, done.stderr
    assert f"would run: usermod --root {target.path} --append --groups qatysu pi" in done.stdout
    assert "pi can run 'qatysu status' without sudo" in done.stdout
    unit = (target.path / "etc/systemd/system/qatysu-agent.service").read_text()
    assert "\nRuntimeDirectoryMode=0750\n" in unit and "\nGroup=qatysu\n" in unit
