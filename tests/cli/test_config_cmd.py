"""`qatysu config show|validate|set` through the real entry point, every error path."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

from agent.config import load_config
from tests.cli.conftest import Run, Site


def cfg(site: Site, *args: str) -> list[str]:
    return ["--config", str(site.config), "config", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_show_fills_in_defaults(site: Site, run: Run) -> None:
    data = run(*cfg(site, "show", "--json")).json()
    assert data["readers"][0]["driver"] == "mfrc522"
    assert data["heartbeat"]["interval_s"] == 300
    assert data["portal"]["batch_records"] == 500  # a default, not in the file
    plain = run(*cfg(site, "show"))
    assert plain.code == 0 and "[[doors]]" in plain.out and "pin = 17" in plain.out


def test_show_without_a_config_is_exit_2_naming_the_file(tmp_path: Path, run: Run) -> None:
    result = run("--config", tmp_path / "none.toml", "config", "show")
    assert result.code == 2
    assert f"{tmp_path / 'none.toml'}: no config file" in result.err


def test_validate_a_fresh_config_passes_with_a_warning(site: Site, run: Run) -> None:
    result = run(*cfg(site, "validate", "--offline"))
    assert result.code == 0
    assert "portal.url: not set" in result.err
    assert f"{site.config}: valid" in result.out


def test_validate_unknown_key_names_it_and_the_nearest(site: Site, run: Run) -> None:
    site.config.write_text(
        site.config.read_text().replace("debounce_ms = 50", "debounse_ms = 50", 1)
    )
    result = run(*cfg(site, "validate"))
    assert result.code == 2
    assert result.err.strip() == (
        f"qatysu: error: {site.config}: unknown key doors.0.debounse_ms "
        "(did you mean 'debounce_ms'?)"
    )


def test_validate_wrong_type_names_the_key(site: Site, run: Run) -> None:
    site.config.write_text(site.config.read_text().replace("pin = 17", 'pin = "17"', 1))
    result = run(*cfg(site, "validate", "--json"))
    assert result.code == 2
    data = result.json()
    assert data["valid"] is False and "doors.0.pin must be int" in data["errors"][0]


def test_validate_pin_out_of_range_and_two_devices_on_one_pin(site: Site, run: Run) -> None:
    text = (
        site.config.read_text()
        .replace("pin = 27", "pin = 40")
        .replace("red_pin = 6", "red_pin = 17")
    )
    site.config.write_text(text)
    result = run(*cfg(site, "validate", "--offline"))
    assert result.code == 2
    assert (
        f"error: {site.config}: tamper.0.pin: GPIO40 is not a header pin (BCM 0..27)" in result.err
    )
    assert "feedback.red_pin: GPIO17 is already used by doors.0.pin" in result.err


def test_validate_pin_on_the_spi_bus_is_an_error(site: Site, run: Run) -> None:
    site.config.write_text(site.config.read_text().replace("pin = 17", "pin = 10", 1))
    result = run(*cfg(site, "validate", "--offline", "--json"))
    assert result.code == 2
    assert "doors.0.pin: GPIO10 is the reader's SPI0 MOSI line" in result.json()["errors"]


def test_validate_missing_serial_port_and_dead_portal_are_warnings(
    tmp_path: Path, run: Run
) -> None:
    config = tmp_path / "a.toml"
    assert (
        run("--config", config, "init", "--profile", "pi-usb-serial", "--state-dir", tmp_path).code
        == 0
    )
    port = tmp_path / "ttyUSB9"
    url = f"http://127.0.0.1:{free_port()}"
    assert run("--config", config, "config", "set", "readers.0.port", port).code == 0
    assert run("--config", config, "config", "set", "portal.url", url).code == 0
    result = run("--config", config, "config", "validate", "--json")
    assert result.code == 0
    warnings = result.json()["warnings"]
    assert f"readers.0.port: {port} does not exist (reader unplugged?)" in warnings
    assert any(w.startswith(f"portal.url: {url} does not answer") for w in warnings)
    assert "portal.url: plain http: records and receipts travel unencrypted" in warnings
    port.write_text("")  # the reader is plugged in now
    warnings = run("--config", config, "config", "validate", "--json").json()["warnings"]
    assert not any("does not exist" in w for w in warnings)


def test_validate_duplicate_names_and_driver_without_port(site: Site, run: Run) -> None:
    text = site.config.read_text().replace('name = "enclosure"', 'name = "main"')
    text += '\n[[readers]]\nname = "entrance"\ndriver = "rdm6300"\n'
    site.config.write_text(text)
    errors = run(*cfg(site, "validate", "--offline", "--json")).json()["errors"]
    assert "readers.1.name: 'entrance' is also readers.0" in errors
    assert "readers.1.port: driver rdm6300 needs a serial port" in errors
    # doors and tamper are separate lists: the same name in both is allowed
    assert not any(e.startswith("tamper.0.name") for e in errors)


def test_set_keeps_comments_and_mode_and_changes_only_the_value(site: Site, run: Run) -> None:
    site.config.chmod(0o640)
    before = site.config.read_text()
    result = run(*cfg(site, "set", "readers.0.poll_ms", "150"))
    assert result.code == 0, result.err
    after = site.config.read_text()
    assert stat.S_IMODE(site.config.stat().st_mode) == 0o640
    assert after == before.replace("poll_ms = 100", "poll_ms = 150")
    assert load_config(site.config).readers[0].poll_ms == 150


def test_set_types_booleans_floats_and_new_sections(site: Site, run: Run) -> None:
    assert run(*cfg(site, "set", "buffer.retain_acknowledged", "yes")).code == 0
    assert run(*cfg(site, "set", "portal.upload_interval_s", "12.5")).code == 0
    assert run(*cfg(site, "set", "feedback.buzzer_pin", "none")).code == 0
    config = load_config(site.config)
    assert config.buffer.retain_acknowledged is True
    assert config.portal.upload_interval_s == 12.5
    assert config.feedback.buzzer_pin is None


def test_set_unknown_key_names_the_nearest_valid_one(site: Site, run: Run) -> None:
    before = site.config.read_text()
    result = run(*cfg(site, "set", "readers.0.prot", "/dev/ttyUSB0"))
    assert result.code == 2
    assert result.err.strip() == (
        f"qatysu: error: {site.config}: unknown key readers.0.prot (did you mean readers.0.port?)"
    )
    result = run(*cfg(site, "set", "portl.url", "https://x"))
    assert result.code == 2 and "no section 'portl' (did you mean 'portal'?)" in result.err
    result = run(*cfg(site, "set", "readers.port", "x"))
    assert result.code == 2 and "readers.0.name" in result.err
    assert site.config.read_text() == before


def test_set_bad_index_bad_type_and_pin_clash_change_nothing(site: Site, run: Run) -> None:
    before = site.config.read_text()
    result = run(*cfg(site, "set", "readers.3.port", "/dev/ttyUSB0"))
    assert result.code == 2
    assert "no entry readers.3 (the file has 1 [[readers]] entry)" in result.err
    result = run(*cfg(site, "set", "doors.0.pin", "seventeen"))
    assert result.code == 2 and "doors.0.pin: 'seventeen' is not a valid int" in result.err
    result = run(*cfg(site, "set", "doors.0.pin", "5"))
    assert result.code == 2
    assert "GPIO5 is already used by doors.0.pin; not changed" in result.err
    assert site.config.read_text() == before


def test_set_without_a_config_file(tmp_path: Path, run: Run) -> None:
    result = run("--config", tmp_path / "none.toml", "config", "set", "portal.url", "https://x")
    assert result.code == 2
    assert "none.toml: no config file (run 'qatysu init --profile NAME')" in result.err
    assert not (tmp_path / "none.toml").exists()


def test_set_missing_arguments_is_a_usage_error(site: Site, run: Run) -> None:
    assert run(*cfg(site, "set", "portal.url")).code == 2


def test_broken_toml_names_the_file_for_validate_and_set(site: Site, run: Run) -> None:
    site.config.write_text(site.config.read_text() + "\n[doors\n")
    result = run(*cfg(site, "validate"))
    assert result.code == 2 and f"{site.config}: not valid TOML" in result.err
    before = site.config.read_text()
    result = run(*cfg(site, "set", "portal.url", "https://x"))
    assert result.code == 2 and f"{site.config}: not valid TOML" in result.err
    assert site.config.read_text() == before


def test_set_an_unknown_driver_is_refused(site: Site, run: Run) -> None:
    result = run(*cfg(site, "set", "readers.0.driver", "pn532"))
    assert result.code == 2
    assert "readers.0.driver: unknown driver 'pn532'" in result.err


def test_set_in_an_inline_array_of_tables(tmp_path: Path, run: Run) -> None:
    config = tmp_path / "a.toml"
    config.write_text('readers = [{name = "a", driver = "rdm6300", port = "loop://"}]  # one\n')
    assert run("--config", config, "config", "set", "readers.0.baudrate", "19200").code == 0
    assert load_config(config).readers[0].baudrate == 19200
    assert config.read_text().endswith("# one\n")


def test_set_another_driver_with_its_keys_drops_the_old_drivers_keys(site: Site, run: Run) -> None:
    before = site.config.read_text()
    alone = run(*cfg(site, "set", "readers.0.driver", "rdm6300"))
    assert alone.code == 2  # an rdm6300 needs a port: nothing is written
    assert "readers.0.port" in alone.err and "same command" in alone.err
    assert site.config.read_text() == before
    result = run(*cfg(site, "set", "readers.0.driver", "rdm6300", "readers.0.port", "loop://"))
    assert result.code == 0, result.err
    assert "removed readers.0.spi_bus" in result.out
    reader = load_config(site.config).readers[0]
    assert reader.driver == "rdm6300" and reader.port == "loop://"  # type: ignore[attr-defined]
    assert "spi_bus" not in site.config.read_text()
    assert "# name in records" in site.config.read_text()  # comments kept


def test_set_a_key_without_a_value_changes_nothing(site: Site, run: Run) -> None:
    before = site.config.read_text()
    result = run(*cfg(site, "set", "readers.0.poll_ms", "150", "readers.0.name"))
    assert result.code == 2 and "readers.0.name: a KEY without a VALUE" in result.err
    assert site.config.read_text() == before
