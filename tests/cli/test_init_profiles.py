"""`qatysu init --profile` and `qatysu profiles` through the real entry point."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_config
from agent.config.profiles import profile_names
from agent.identity import load_key_file
from agent.protocol import public_key_b64
from tests.cli.conftest import Run, Site


@pytest.mark.parametrize("profile", profile_names())
def test_init_writes_a_commented_config_that_loads_for_every_profile(
    tmp_path: Path, run: Run, profile: str
) -> None:
    config = tmp_path / "agent.toml"
    result = run("--config", config, "init", "--profile", profile, "--state-dir", tmp_path / "s")
    assert result.code == 0, result.err
    text = config.read_text()
    assert f"'qatysu init --profile {profile}'" in text
    assert "# name in records and on the portal" in text
    loaded = load_config(config)
    assert loaded.device.state_dir == tmp_path / "s"
    assert loaded.readers, "every profile has a reader"
    assert run("--config", config, "config", "validate", "--offline").code == 0


def test_init_generates_the_key_0600_and_prints_its_public_half(site: Site, run: Run) -> None:
    key_path = site.state_dir / "device.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(site.state_dir.stat().st_mode) == 0o700
    again = run("--config", site.config, "init", "--profile", "pi5-rc522", "--force", "--json")
    assert again.code == 0, again.err
    data = again.json()
    assert data["key_created"] is False  # --force replaces the config, never the key
    assert data["public_key"] == public_key_b64(load_key_file(key_path))


def test_init_refuses_an_existing_config_without_force(site: Site, run: Run) -> None:
    before = site.config.read_text()
    result = run("--config", site.config, "init", "--profile", "pi-usb-serial")
    assert result.code == 2
    assert result.err.strip() == (
        f"qatysu: error: {site.config}: a config already exists (use --force to replace it)"
    )
    assert site.config.read_text() == before
    # After a lost key, the command that helps (--force would make a key nobody knows).
    (site.state_dir / "device.key").unlink()
    result = run("--config", site.config, "init", "--profile", "pi5-rc522")
    assert result.code == 2
    assert result.err.strip() == (
        f"qatysu: error: {site.config}: a config already exists (its device key is gone: "
        f"'qatysu --config {site.config} init --new-key' makes one)"
    )


def test_init_unknown_profile_is_a_usage_error_naming_the_known_ones(
    tmp_path: Path, run: Run
) -> None:
    result = run("--config", tmp_path / "a.toml", "init", "--profile", "pi6-rc522")
    assert result.code == 2
    assert "unknown profile 'pi6-rc522'" in result.err and "pi5-rc522" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "a.toml").exists()


def test_init_refuses_an_existing_key_that_others_can_read(tmp_path: Path, run: Run) -> None:
    state = tmp_path / "s"
    state.mkdir()
    key = state / "device.key"
    key.write_text("00" * 32 + "\n")
    key.chmod(0o644)
    result = run(
        "--config", tmp_path / "a.toml", "init", "--profile", "pi5-rc522", "--state-dir", state
    )
    assert result.code == 1
    assert f"{key}: device key is mode 0644; run 'chmod 600 {key}'" in result.err


def test_init_cannot_write_names_the_file(tmp_path: Path, run: Run) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run("--config", blocker / "agent.toml", "init", "--profile", "pi5-rc522")
    assert result.code == 1
    assert f"{blocker / 'agent.toml'}: cannot write" in result.err


def test_init_needs_a_profile(tmp_path: Path, run: Run) -> None:
    result = run("--config", tmp_path / "a.toml", "init")
    assert result.code == 2 and "--profile" in result.err


def test_profiles_lists_every_profile_plain_and_json(run: Run) -> None:
    plain = run("profiles")
    assert plain.code == 0
    for name in profile_names():
        assert name in plain.out
    data = run("profiles", "--json").json()
    assert [p["name"] for p in data] == profile_names()
    pi5 = next(p for p in data if p["name"] == "pi5-rc522")
    assert pi5["device_classes"] == ["spidev", "gpiochip"]
    assert pi5["boot_config_lines"] == ["dtparam=spi=on"]
    assert pi5["drivers"] == ["mfrc522"]


def test_console_script_help_lists_the_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    for command in ("init", "profiles", "config", "enroll", "status", "doctor", "test"):
        assert f"  {command} " in done.stdout
