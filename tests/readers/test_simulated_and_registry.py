"""The simulated reader over its socket, and driver selection by name."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import ReaderConfig, config_from_dict
from agent.exceptions import ConfigError
from agent.hardware.events import BadgeRead
from agent.readers.rdm6300 import Rdm6300Config, Rdm6300Reader
from agent.readers.registry import DRIVERS, create_reader
from agent.readers.serial_line import SerialLineConfig, SerialLineReader
from agent.readers.simulated import SimulatedConfig, SimulatedReader, tap
from tests.hardware.helpers import WAIT_S, Running


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="qsim"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_simulated_taps_over_socket(sock_dir: Path) -> None:
    cfg = config_from_dict(
        {"readers": [{"name": "demo", "driver": "simulated", "socket": str(sock_dir / "s.sock")}]}
    ).readers[0]
    reader = create_reader(cfg)
    assert isinstance(reader, SimulatedReader)
    with Running(reader) as run:
        assert reader.listening.wait(WAIT_S)
        tap(cfg.socket, "04a1b2c3", "not a uid", "04:11:22:33:44:55:66")
        tap(cfg.socket, "04A1B2C3")  # every line is a tap, repeats included
        assert run.next() == BadgeRead("demo", "simulated", "04A1B2C3", 4)
        assert run.next() == BadgeRead("demo", "simulated", "04112233445566", 7)
        assert run.next() == BadgeRead("demo", "simulated", "04A1B2C3", 4)
    assert not (sock_dir / "s.sock").exists()


def test_stale_socket_is_replaced_but_a_file_is_not(sock_dir: Path) -> None:
    path = sock_dir / "file.sock"
    path.write_text("keep me")
    reader = SimulatedReader("demo", path)
    with Running(reader) as run:
        status = run.next()
        assert status.state == "fault" and "file.sock" in status.detail
    assert path.read_text() == "keep me"


def test_registry_builds_each_serial_driver() -> None:
    rdm = create_reader(Rdm6300Config(name="a", port="loop://"))
    line = create_reader(SerialLineConfig(name="b", port="loop://"))
    assert isinstance(rdm, Rdm6300Reader) and rdm.driver == "rdm6300"
    assert isinstance(line, SerialLineReader) and line.driver == "serial-line"
    assert set(DRIVERS) == {"mfrc522", "rdm6300", "serial-line", "simulated"}


def test_unknown_driver_names_reader_and_known_drivers() -> None:
    known = r"\(known: mfrc522, rdm6300, serial-line, simulated\)"
    with pytest.raises(ConfigError, match=r"reader 'gate': unknown driver 'rc522' " + known):
        create_reader(ReaderConfig(name="gate", driver="rc522"))


def test_bad_pattern_and_missing_socket_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="pattern"):
        create_reader(SerialLineConfig(name="b", port="loop://", pattern="(["))
    with pytest.raises(ConfigError, match="socket"):
        create_reader(SimulatedConfig(name="c"))


def test_tap_from_the_command_line(sock_dir: Path) -> None:
    from agent.readers.simulated import main

    path = sock_dir / "cli.sock"
    reader = SimulatedReader("demo", path)
    with Running(reader) as run:
        assert reader.listening.wait(WAIT_S)
        assert main([str(path), "0A1B2C3D4E"]) == 0
        assert run.next() == BadgeRead("demo", "simulated", "0A1B2C3D4E", 5)
    assert main([str(path), "0A1B2C3D4E"]) == 1  # nobody listening
    assert main([]) == 2
