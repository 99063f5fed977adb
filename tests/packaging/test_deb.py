"""`make deb`: the package's contents, and its maintainer scripts run for real.

The package is built by packaging/build-deb.sh (dpkg-deb, wheels from PyPI
pinned by the lock), inspected with `dpkg-deb -I/-c`, then installed, upgraded,
removed and purged with the real dpkg into a throwaway root
(`dpkg --root DIR --force-script-chrootless`: the scripts run here with
DPKG_ROOT=DIR, on this machine's python3). `make pi-check` installs it with apt
into an emulated arm64 Debian instead.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import load_config
from tests.support.tools import require_tool

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("dpkg-deb")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [str(REPO / "packaging/build-deb.sh"), "--out", str(out), "--python", sys.executable],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip().splitlines()[-1])
    assert path.name == "qatysu-agent_0.1.0_all.deb"
    return path


def dpkg_deb(*args: str) -> str:
    return subprocess.run(["dpkg-deb", *args], capture_output=True, text=True, check=True).stdout


def test_control_takes_the_bindings_from_the_distribution(deb: Path) -> None:
    fields = dict(
        line.split(": ", 1) for line in dpkg_deb("-f", str(deb)).splitlines() if ": " in line
    )
    assert fields["Architecture"] == "all" and fields["Package"] == "qatysu-agent"
    depends = [d.strip() for d in fields["Depends"].split(",")]
    assert "python3 (>= 3.11)" in depends
    for package in ("python3-venv", "python3-cryptography", "python3-spidev", "python3-gpiozero"):
        assert package in depends
    assert "python3-rpi-lgpio" in fields["Recommends"]
    info = dpkg_deb("-I", str(deb))
    for script in ("postinst", "prerm", "postrm"):
        assert f" {script} " in info


def test_contents_are_the_command_the_unit_and_pure_python_wheels(deb: Path) -> None:
    listing = dpkg_deb("-c", str(deb))
    paths = {line.split()[-1] for line in listing.splitlines()}
    for path in (
        "./usr/bin/qatysu",
        "./lib/systemd/system/qatysu-agent.service",
        "./usr/lib/modules-load.d/qatysu.conf",
        "./usr/lib/qatysu/wheels/qatysu-0.1.0-py3-none-any.whl",
        "./usr/lib/qatysu/wheels/mfrc522-0.0.7-py3-none-any.whl",
    ):
        assert path in paths, path
    wheels = [p for p in paths if p.endswith(".whl")]
    assert all(p.endswith("-none-any.whl") for p in wheels), wheels  # one package, any arch
    # The compiled ones are the distribution's.
    assert not [p for p in wheels if "/cryptography-" in p or "/cffi-" in p or "/spidev" in p]
    # No config or key ships: postinst makes them, so dpkg never overwrites them.
    assert not [p for p in paths if p.startswith(("./etc/qatysu", "./var/lib/qatysu"))]


class Root:
    """A throwaway system root with an empty dpkg database and account files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        for folder in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"):
            (path / folder).mkdir(parents=True, exist_ok=True)
        for name in ("status", "available"):
            (path / "var/lib/dpkg" / name).touch()
        (path / "etc/passwd").write_text("root:x:0:0::/root:/bin/bash\n")
        (path / "etc/group").write_text("root:x:0:\ndialout:x:20:\n")
        (path / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
        (path / "etc/gshadow").write_text("root:*::\ndialout:*::\n")

    def dpkg(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "dpkg",
                f"--root={self.path}",
                "--force-script-chrootless",
                "--force-depends",
                "--log=/dev/null",
                *args,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
            env={**os.environ, **env},
        )


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Root]:
    require_tool("dpkg")
    if os.geteuid() != 0:
        pytest.skip("dpkg --root writes a dpkg database owned by root (CI runs as root)")
    yield Root(tmp_path / "root")


def test_install_upgrade_remove_purge_in_a_throwaway_root(deb: Path, root: Root) -> None:
    done = root.dpkg("-i", str(deb), QATYSU_PROFILE="pi5-rc522")
    assert done.returncode == 0, done.stderr
    assert "turn SPI on: sudo raspi-config nonint do_spi 0" in done.stdout
    assert "do_serial_cons" not in done.stdout  # an SPI reader leaves the UART alone
    r = root.path
    passwd = (r / "etc/passwd").read_text()
    assert "qatysu:x:" in passwd and ":/var/lib/qatysu:/usr/sbin/nologin" in passwd
    group = (r / "etc/group").read_text()
    for name in ("gpio", "spi", "dialout"):
        assert any(line.startswith(f"{name}:") and "qatysu" in line for line in group.splitlines())
    venv = r / "usr/lib/qatysu/venv"
    assert "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    key = r / "var/lib/qatysu/device.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    uid = int(
        next(line for line in passwd.splitlines() if line.startswith("qatysu:")).split(":")[2]
    )
    assert key.stat().st_uid == uid
    config = load_config(r / "etc/qatysu/agent.toml")
    assert config.readers[0].driver == "mfrc522" and config.device.state_dir == Path(
        "/var/lib/qatysu"
    )
    wrapper = (r / "usr/bin/qatysu").read_text()
    assert "exec /usr/lib/qatysu/venv/bin/qatysu " in wrapper
    unit = (r / "lib/systemd/system/qatysu-agent.service").read_text()
    assert "ExecStart=/usr/lib/qatysu/venv/bin/qatysu --config /etc/qatysu/agent.toml run" in unit
    # The venv runs the agent: the profiles it ships are found.
    listed = subprocess.run(
        [str(venv / "bin/qatysu"), "profiles", "--json"],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "QATYSU_FIRMWARE_CONFIG"},
    )
    assert listed.returncode == 0 and "pi5-rdm6300-uart" in listed.stdout, listed.stderr

    # Upgrade (the same version again runs postinst configure with the old one):
    # config, key and records stay; another QATYSU_PROFILE changes nothing.
    records = r / "var/lib/qatysu/segment-000001.jsonl"
    records.write_text('{"seq": 1}\n')
    before = ((r / "etc/qatysu/agent.toml").read_text(), key.read_bytes())
    done = root.dpkg("-i", str(deb), QATYSU_PROFILE="pi-usb-serial")
    assert done.returncode == 0, done.stderr
    assert ((r / "etc/qatysu/agent.toml").read_text(), key.read_bytes()) == before
    assert records.read_text() == '{"seq": 1}\n'

    done = root.dpkg("--remove", "qatysu-agent")
    assert done.returncode == 0, done.stderr
    assert not venv.exists() and not (r / "usr/bin/qatysu").exists()
    assert key.exists() and records.exists() and (r / "etc/qatysu/agent.toml").exists()
    assert "kept /etc/qatysu and /var/lib/qatysu" in done.stdout

    done = root.dpkg("--purge", "qatysu-agent")
    assert done.returncode == 0, done.stderr
    assert (
        "purge: deleting /etc/qatysu (the config), /var/lib/qatysu (the device key" in done.stdout
    )
    assert not (r / "etc/qatysu").exists() and not (r / "var/lib/qatysu").exists()


def test_install_without_a_profile_makes_the_key_and_says_what_next(deb: Path, root: Root) -> None:
    done = root.dpkg("-i", str(deb))
    assert done.returncode == 0, done.stderr
    assert (root.path / "var/lib/qatysu/device.key").is_file()
    assert not (root.path / "etc/qatysu/agent.toml").exists()
    assert "next: sudo qatysu init --profile NAME" in done.stdout


def test_pi_check_wants_the_package_and_parses() -> None:
    # The check itself takes minutes under emulation: `make pi-check`, not `make test`.
    script = REPO / "packaging/pi-check.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    done = subprocess.run([str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "give the .deb to check" in done.stderr
