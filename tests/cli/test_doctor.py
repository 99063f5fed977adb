"""`qatysu doctor` against a temporary root (fake boot config, /dev, /etc), never this machine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from agent.doctor import Facts, Users, run_checks
from agent.protocol import public_key_b64
from portal.state import Portal
from tests.cli.conftest import Run, Site, make_site
from tests.cli.daemon_stub import daemon_side
from tests.daemon.support import LivePortal

ME = os.getuid()
MY_GID = os.getgid()


class FakeRoot:
    """A system root: boot config, device nodes (plain files), passwd and group."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.users: dict[str, tuple[int, int]] = {"root": (0, 0), "qatysu": (ME, 64000)}
        # Nodes are plain files owned by the test runner's gid, which the fake
        # groups below take; "root" keeps gid 0 only when that is not ours.
        self.groups: dict[str, tuple[int, list[str]]] = {"qatysu": (64000, [])}
        if MY_GID != 0:
            self.groups["root"] = (0, [])

    def boot(self, *lines: str, where: str = "boot/firmware/config.txt") -> Path:
        path = self.path / where
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# Raspberry Pi OS\n[all]\n" + "".join(f"{line}\n" for line in lines))
        return path

    def node(self, name: str, mode: int = 0o660) -> Path:
        path = self.path / "dev" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        path.chmod(mode)
        return path

    def group(self, name: str, *members: str, gid: int | None = None) -> None:
        self.groups[name] = (MY_GID if gid is None else gid, list(members))

    def write(self) -> None:
        etc = self.path / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "passwd").write_text(
            "".join(
                f"{u}:x:{uid}:{gid}::/nonexistent:/usr/sbin/nologin\n"
                for u, (uid, gid) in self.users.items()
            )
        )
        (etc / "group").write_text(
            "".join(f"{g}:x:{gid}:{','.join(m)}\n" for g, (gid, m) in self.groups.items())
        )


@pytest.fixture
def root(tmp_path: Path) -> FakeRoot:
    return FakeRoot(tmp_path / "root")


def good_pi5(root: FakeRoot) -> None:
    root.boot("dtparam=spi=on")
    root.node("spidev0.0")
    root.node("gpiochip0")
    root.group("spi", "qatysu")  # the nodes' group is the test runner's gid
    root.group("gpio", "qatysu", gid=MY_GID + 1)
    root.write()


def doctor(run: Run, site: Site, root: FakeRoot, *extra: str) -> tuple[int, dict[str, list[Any]]]:
    result = run(
        "--config", site.config, "doctor", "--root", root.path, "--offline", "--json", *extra
    )
    by_name: dict[str, list[Any]] = {}
    for check in result.json():
        by_name.setdefault(check["check"], []).append(check)
    return result.code, by_name


def statuses(checks: dict[str, list[Any]], name: str) -> list[str]:
    return [c["status"] for c in checks[name]]


def enrolled(site: Site, run: Run, url: str = "https://portal.example") -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    for key, value in (
        ("portal.url", url),
        ("portal.public_key", public_key_b64(Ed25519PrivateKey.generate())),
        ("portal.device_id", "dev-1"),
    ):
        assert run("--config", site.config, "config", "set", key, value).code == 0


def test_a_well_set_up_pi5_passes(site: Site, run: Run, root: FakeRoot) -> None:
    good_pi5(root)
    enrolled(site, run)
    code, checks = doctor(run, site, root, "--no-probe")
    assert statuses(checks, "boot config") == ["pass"]
    assert statuses(checks, "device") == ["pass", "pass"]
    assert statuses(checks, "group") == ["pass", "pass"]  # spi and gpio (primary-less)
    assert statuses(checks, "key") == ["pass"]
    assert statuses(checks, "enrollment") == ["pass"]
    assert statuses(checks, "daemon") == ["warn"]  # not running
    assert statuses(checks, "reader") == ["warn"]  # --no-probe
    assert code == 0


def test_spi_missing_from_the_boot_config_fails_with_the_line_to_add(
    site: Site, run: Run, root: FakeRoot
) -> None:
    good_pi5(root)
    root.boot("#dtparam=spi=on", "dtparam=audio=on")
    code, checks = doctor(run, site, root, "--no-probe")
    (boot,) = checks["boot config"]
    assert boot["status"] == "fail"
    assert (
        boot["detail"] == "/boot/firmware/config.txt: dtparam=spi=on missing (SPI0 for the MFRC522)"
    )
    assert "add 'dtparam=spi=on' to /boot/firmware/config.txt and reboot" in boot["fix"]
    assert code == 1


def test_older_releases_keep_the_boot_config_in_boot(site: Site, run: Run, root: FakeRoot) -> None:
    good_pi5(root)
    (root.path / "boot/firmware/config.txt").unlink()
    root.boot("dtparam=spi=on", where="boot/config.txt")
    _, checks = doctor(run, site, root, "--no-probe")
    assert checks["boot config"][0]["detail"].startswith("/boot/config.txt: dtparam=spi=on")


def test_no_boot_config_at_all(site: Site, run: Run, root: FakeRoot) -> None:
    root.write()
    code, checks = doctor(run, site, root, "--no-probe")
    assert checks["boot config"][0]["status"] == "fail" and code == 1


def test_missing_device_nodes_fail(site: Site, run: Run, root: FakeRoot) -> None:
    root.boot("dtparam=spi=on")
    root.group("spi", "qatysu")
    root.group("gpio", "qatysu", gid=MY_GID + 1)
    root.write()
    code, checks = doctor(run, site, root, "--no-probe")
    details = {c["detail"]: c for c in checks["device"]}
    assert details["no /dev/gpiochip*"]["status"] == "fail"
    missing = details["/dev/spidev0.0 missing (reader entrance)"]
    assert missing["fix"] == "enable SPI in the boot config and reboot"
    assert code == 1


def test_node_the_service_user_cannot_open(site: Site, run: Run, root: FakeRoot) -> None:
    good_pi5(root)
    root.groups["spi"] = (MY_GID, [])  # qatysu left out of the node's group
    root.users["qatysu"] = (ME + 1, 64000)
    root.write()
    _, checks = doctor(run, site, root, "--no-probe")
    spidev = checks["device"][0]
    assert spidev["status"] == "fail"
    assert "/dev/spidev0.0 (group spi, mode 0660) not accessible by qatysu" in spidev["detail"]
    assert spidev["fix"].startswith("usermod -aG spi qatysu")
    assert "qatysu is not in spi" in [c["detail"] for c in checks["group"]]


def test_no_service_user(site: Site, run: Run, root: FakeRoot) -> None:
    good_pi5(root)
    del root.users["qatysu"]
    root.write()
    code, checks = doctor(run, site, root, "--no-probe", "--user", "qatysu")
    assert checks["user"][0]["detail"] == "no user qatysu in /etc/passwd"
    assert code == 1


def test_key_too_open_and_key_of_another_owner(site: Site, run: Run, root: FakeRoot) -> None:
    good_pi5(root)
    key = site.state_dir / "device.key"
    key.chmod(0o644)
    _, checks = doctor(run, site, root, "--no-probe")
    assert checks["key"][0]["status"] == "fail" and checks["key"][0]["fix"] == f"chmod 600 {key}"
    key.chmod(0o600)
    root.users["qatysu"] = (ME + 1, 64000)
    root.write()
    _, checks = doctor(run, site, root, "--no-probe")
    assert checks["key"][0]["fix"] == f"chown qatysu {key}"


def test_uart_profile_follows_serial0_inside_the_root(
    tmp_path: Path, short_dir: Path, run: Run, root: FakeRoot
) -> None:
    site = make_site(tmp_path, short_dir, run, "pi-rdm6300-uart")
    root.boot("enable_uart=1", "dtoverlay=disable-bt")
    root.node("ttyAMA0")
    root.node("gpiochip0")
    (root.path / "dev/serial0").symlink_to("/dev/ttyAMA0")  # absolute: re-rooted
    root.group("dialout", "qatysu")
    root.write()
    _, checks = doctor(run, site, root, "--no-probe")
    assert statuses(checks, "boot config") == ["pass"]
    assert "/dev/serial0 readable and writable by qatysu" in [c["detail"] for c in checks["device"]]
    (root.path / "dev/ttyAMA0").unlink()
    _, checks = doctor(run, site, root, "--no-probe")
    assert "/dev/serial0 missing (reader entrance)" in [c["detail"] for c in checks["device"]]


def test_reader_probe_failure_and_success(
    tmp_path: Path, short_dir: Path, site: Site, run: Run, root: FakeRoot
) -> None:
    good_pi5(root)
    # no SPI bus on this machine: the MFRC522 probe must fail, naming the reader
    code, checks = doctor(run, site, root)
    (reader,) = checks["reader"]
    assert reader["status"] == "fail" and reader["detail"].startswith("entrance")
    assert code == 1
    sim = make_site(tmp_path / "sim", short_dir, run, "demo-simulated")
    _, checks = doctor(run, sim, root)
    assert checks["reader"][0] == {
        "check": "reader",
        "status": "pass",
        "detail": f"simulated reader demo: taps go to {short_dir / 'sim.sock'}",
        "fix": "",
    }


def test_running_daemon_reports_readers_and_upload_error(
    site: Site, run: Run, root: FakeRoot
) -> None:
    good_pi5(root)
    with daemon_side(site.socket) as daemon:
        daemon.status["readers"] = {"entrance": "fault"}
        daemon.status["last_upload_error"] = "HTTP 403 revoked"
        code, checks = doctor(run, site, root)
    assert statuses(checks, "daemon") == ["pass"]
    assert checks["upload"][0]["detail"] == "last upload failed: HTTP 403 revoked"
    assert checks["reader"][0]["status"] == "fail"
    assert "buffer" not in checks  # the files belong to the daemon while it runs
    assert code == 1


@pytest.fixture
def portal_site(site: Site, run: Run, live: LivePortal) -> Iterator[Site]:
    enrolled(site, run, live.url)
    yield site


def test_portal_reachable_and_unreachable(
    portal_site: Site, run: Run, root: FakeRoot, portal: Portal, live: LivePortal
) -> None:
    good_pi5(root)
    args = ("--config", portal_site.config, "doctor", "--root", root.path, "--no-probe", "--json")
    checks = run(*args).json()
    portal_checks = [c for c in checks if c["check"] == "portal"]
    assert {
        "check": "portal",
        "status": "warn",
        "detail": f"{live.url} is plain http (lab only)",
        "fix": "",
    } in portal_checks
    assert any(
        c["status"] == "pass" and c["detail"] == f"{live.url} answers" for c in portal_checks
    )
    live.server.stop()
    result = run(*args)
    assert result.code == 1
    failed = [c for c in result.json() if c["check"] == "portal" and c["status"] == "fail"]
    assert failed and failed[0]["detail"].startswith(f"{live.url}: ")


def test_plain_output_names_each_check_and_the_fix(site: Site, run: Run, root: FakeRoot) -> None:
    root.write()
    result = run("--config", site.config, "doctor", "--root", root.path, "--offline", "--no-probe")
    assert result.code == 1
    assert "FAIL  boot config: no /boot/firmware/config.txt or /boot/config.txt -> " in result.out
    assert result.out.rstrip().splitlines()[-1].endswith("passed")


def test_bad_root_is_a_usage_error(site: Site, run: Run, tmp_path: Path) -> None:
    result = run("--config", site.config, "doctor", "--root", tmp_path / "nope")
    assert result.code == 2 and "--root" in result.err


def test_core_users_parse_primary_and_supplementary_groups(root: FakeRoot) -> None:
    root.group("gpio", gid=997)
    root.users["qatysu"] = (999, 997)  # primary group gpio, not listed as member
    root.write()
    users = Users.under(root.path)
    assert users.in_group("qatysu", "gpio") and not users.in_group("qatysu", "spi")


def test_core_without_facts_warns_instead_of_guessing(site: Site, root: FakeRoot) -> None:
    good_pi5(root)
    checks = run_checks(load_config(site.config), root.path, Facts())
    clock = [c for c in checks if c.name == "clock"]
    assert clock[0].status == "warn"
    facts = Facts(clock_synced=False, disk_free_bytes=10 * 1024 * 1024)
    checks = run_checks(load_config(site.config), root.path, facts)
    assert [c.status for c in checks if c.name == "disk"] == ["fail"]


def uart_pi(root: FakeRoot, cmdline: str) -> None:
    root.boot("enable_uart=1", "dtoverlay=disable-bt")
    (root.path / "boot/firmware/cmdline.txt").write_text(cmdline)
    root.node("ttyAMA0")
    root.node("gpiochip0")
    (root.path / "dev/serial0").symlink_to("/dev/ttyAMA0")
    root.group("dialout", "qatysu")
    root.write()


def test_a_login_console_on_the_readers_uart_fails(
    tmp_path: Path, short_dir: Path, run: Run, root: FakeRoot
) -> None:
    site = make_site(tmp_path, short_dir, run, "pi-rdm6300-uart")
    uart_pi(root, "console=serial0,115200 console=tty1 root=PARTUUID=1-02 rootwait\n")
    code, checks = doctor(run, site, root, "--no-probe")
    (console,) = checks["serial console"]
    assert console["status"] == "fail" and code == 1
    assert console["detail"] == (
        "/boot/firmware/cmdline.txt: console=serial0,115200 puts a login console on the "
        "reader's UART"
    )
    assert "do_serial_cons 1" in console["fix"]
    (root.path / "boot/firmware/cmdline.txt").write_text("console=tty1 root=PARTUUID=1-02\n")
    _, checks = doctor(run, site, root, "--no-probe")
    assert statuses(checks, "serial console") == ["pass"]
    # An SPI reader does not care about the console.
    spi = make_site(tmp_path / "spi", short_dir, run, "pi5-rc522")
    _, checks = doctor(run, spi, root, "--no-probe")
    assert "serial console" not in checks


def test_a_gpio_library_that_refuses_the_machine_is_a_failed_reader_not_a_traceback(
    tmp_path: Path, site: Site, run: Run, root: FakeRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    # rpi-lgpio's RPi.GPIO as it behaves off a Pi (or when /proc hides the board).
    fake = tmp_path / "site"
    (fake / "RPi").mkdir(parents=True)
    (fake / "RPi/__init__.py").write_text("")
    (fake / "RPi/GPIO.py").write_text(
        "raise RuntimeError('This module can only be run on a Raspberry Pi!')\n"
    )
    monkeypatch.syspath_prepend(str(fake))
    for name in ("RPi", "RPi.GPIO"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    good_pi5(root)
    code, checks = doctor(run, site, root)
    (reader,) = checks["reader"]
    assert code == 1 and reader["status"] == "fail"
    assert reader["detail"].startswith("entrance: ")
    assert reader["detail"].endswith("This module can only be run on a Raspberry Pi!")


def test_a_read_only_state_dir_fails(site: Site, root: FakeRoot) -> None:
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a read-only bind mount needs root and unshare (CI runs as root)")
    good_pi5(root)
    # The real measurement on a real read-only mount, in a private mount namespace.
    code = (
        "import sys; from pathlib import Path; from agent.cli.doctor import state_dir_problem;"
        "print(repr(state_dir_problem(Path(sys.argv[1]))))"
    )
    script = (
        f'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && '
        f'"{sys.executable}" -c "{code}" "$1"'
    )
    done = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            str(site.state_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.stdout.strip() == "'on a read-only file system'", done.stderr
    from agent.cli.doctor import state_dir_problem

    assert state_dir_problem(site.state_dir) == ""
    config = load_config(site.config)
    facts = Facts(state_dir_problem="on a read-only file system")
    (check,) = [c for c in run_checks(config, root.path, facts) if c.name == "state dir"]
    assert check.status == "fail" and "remount the SD card read-write" in check.fix
