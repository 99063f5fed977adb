"""Board profiles: every one loads, its fragment is a valid config, its pins are documented."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from agent.config import config_from_dict
from agent.config.profiles import ENV_VAR, list_profiles, load_profile, profile_names, profiles_dir
from agent.exceptions import ConfigError
from agent.hardware.feedback import Feedback
from agent.hardware.sensors import build_sensors
from agent.readers.registry import create_reader, requirements

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


REQUIRED = {"pi3-pi4-zero2w-rc522", "pi5-rc522", "pi-rdm6300-uart", "pi-usb-serial"}


def test_required_profiles_exist_and_checkout_dir_is_used() -> None:
    assert set(profile_names()) >= REQUIRED
    assert profiles_dir() == REPO / "firmware_config"
    assert [p.name for p in list_profiles()] == profile_names()


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "firmware_config").iterdir()))
def test_profile_loads_and_its_fragment_is_a_valid_config(name: str) -> None:
    profile = load_profile(name)
    assert profile.description and profile.boards
    config = config_from_dict(profile.config)
    assert profile.agent_config().readers == config.readers
    assert config.readers, "a profile without a reader reads nothing"
    for reader_cfg in config.readers:
        # Building a reader opens nothing (its bus is opened by run or probe).
        assert create_reader(reader_cfg).driver == reader_cfg.driver
    factory = MockFactory()
    try:
        sensors = build_sensors(config, pin_factory=factory, on_change=lambda _c: None)
        feedback = Feedback(config.feedback, pin_factory=factory)
        for sensor in sensors:
            sensor.close()
        feedback.close()
    finally:
        factory.reset()
    readme = profile.readme.read_text(encoding="utf-8")
    used = {s.pin for s in (*config.doors, *config.tamper)}
    used |= {p for p in vars(config.feedback).values() if isinstance(p, int) and p < 28}
    used |= {pin for r in config.readers for _, pin in requirements(r).pins}
    for pin in used:
        assert re.search(rf"GPIO {pin}\b", readme), f"{name}: GPIO {pin} not in README.md"


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "firmware_config").iterdir()))
def test_profile_declares_what_its_readers_require(name: str) -> None:
    # What `qatysu profiles` tells the installer matches what `qatysu doctor` will check.
    profile = load_profile(name)
    for reader_cfg in profile.agent_config().readers:
        needs = requirements(reader_cfg)
        assert set(needs.groups) <= set(profile.groups)
        assert {d.path for d in needs.devices} <= set(profile.devices)
        for line in needs.boot_config:
            assert set(line.accepted) & set(profile.boot_config_lines), (name, line.why)


def test_boot_config_lines() -> None:
    for name in ("pi3-pi4-zero2w-rc522", "pi5-rc522"):
        profile = load_profile(name)
        assert "dtparam=spi=on" in profile.boot_config_lines and "spi" in profile.groups
    uart = load_profile("pi-rdm6300-uart")
    assert uart.boot_config_lines == ("enable_uart=1", "dtoverlay=disable-bt")
    assert "dialout" in uart.groups and "/dev/serial0" in uart.devices
    pi5 = load_profile("pi5-rdm6300-uart")
    assert pi5.boot_config_lines == ("dtparam=uart0=on",)
    assert pi5.config["readers"][0]["port"] == "/dev/ttyAMA0" and pi5.boards == ("Raspberry Pi 5",)
    assert not any("5" in board for board in uart.boards)
    assert load_profile("pi-usb-serial").boot_config_lines == ()
    assert any("rpi-lgpio" in note for note in load_profile("pi5-rc522").notes)


def test_no_profile_names_an_armv6_board() -> None:
    # Zero W and Zero: no armv6 wheel of spidev or lgpio, and no install check there.
    for profile in list_profiles():
        for board in profile.boards:
            assert not re.search(r"Zero( W)?$|Zero W\b|Pi 1\b", board), (profile.name, board)


def test_every_profile_ships_in_a_wheel() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["data-files"]
    for name in profile_names():
        assert shipped[f"share/qatysu/firmware_config/{name}"] == [f"firmware_config/{name}/*"]


def test_unknown_profile_lists_known() -> None:
    with pytest.raises(ConfigError, match=r"unknown profile 'pi6'.*pi5-rc522"):
        load_profile("pi6")
    with pytest.raises(ConfigError, match="unknown profile"):
        load_profile("../firmware_config/pi5-rc522")


def test_env_override_and_errors_name_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "profile.toml").write_text('name = "broken"\ndescription = "x"\ngroups = "spi"\n')
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert profile_names() == ["broken"]
    with pytest.raises(ConfigError, match=r"broken/profile.toml: groups must be a list"):
        load_profile("broken")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=ENV_VAR):
        profiles_dir()
