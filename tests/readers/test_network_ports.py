"""A serial reader fed over the network takes taps from anywhere: refused unless allowed."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import serial

from agent.config import config_from_dict
from agent.config.check import check_config
from agent.daemon.boot import boot_data
from agent.hardware.events import BadgeRead, ReaderStatus
from agent.readers.framing import em4100_frame
from agent.readers.rdm6300 import Rdm6300Config, Rdm6300Reader
from agent.readers.registry import create_reader
from agent.readers.serial_line import SerialLineConfig
from agent.readers.serial_port import is_network_port, port_scheme

CARD = "0A1B2C3D4E"


@pytest.mark.parametrize(
    ("port", "network", "scheme"),
    [
        ("/dev/ttyUSB0", False, "path"),
        ("/dev/serial0", False, "path"),
        ("loop://", False, "loop"),
        ("hwgrep://CP210", False, "hwgrep"),
        ("spy:///dev/ttyUSB0?file=/tmp/x", False, "spy"),
        ("socket://10.0.0.5:7000", True, "socket"),
        ("SOCKET://laptop:7000", True, "socket"),
        ("rfc2217://laptop:2217", True, "rfc2217"),
        ("spy://socket://laptop:7000?file=/tmp/x", True, "spy"),
        ("alt://rfc2217://laptop:2217?class=Serial", True, "alt"),
        ("cp2110://0001:0002", True, "cp2110"),  # unknown to us: counted as network
    ],
)
def test_which_ports_reach_the_network(port: str, network: bool, scheme: str) -> None:
    assert is_network_port(port) is network
    assert port_scheme(port) == scheme


def _loop_opener(opened: list[Any]) -> Any:
    def opener(url: str, **kwargs: Any) -> Any:
        port = serial.serial_for_url("loop://", **kwargs)
        port.write(em4100_frame(CARD))  # a tap waiting on the "network"
        opened.append(url)
        return port

    return opener


def _first_event(reader: Rdm6300Reader) -> BadgeRead | ReaderStatus:
    events: list[BadgeRead | ReaderStatus] = []
    got = threading.Event()
    stop = threading.Event()

    def emit(event: BadgeRead | ReaderStatus) -> None:
        events.append(event)
        got.set()

    thread = threading.Thread(target=reader.run, args=(emit, stop), daemon=True)
    thread.start()
    assert got.wait(30)
    stop.set()
    thread.join(30)
    return events[0]


def test_a_socket_port_is_a_reader_fault_and_never_opened() -> None:
    opened: list[Any] = []
    config = Rdm6300Config(name="entrance", port="socket://laptop:7000")
    reader = create_reader(config, opener=_loop_opener(opened))
    first = _first_event(reader)  # type: ignore[arg-type]
    assert isinstance(first, ReaderStatus) and first.state == "fault"
    assert "network port is refused" in first.detail
    assert opened == []


def test_allow_network_port_lets_it_through() -> None:
    opened: list[Any] = []
    config = Rdm6300Config(name="entrance", port="socket://laptop:7000", allow_network_port=True)
    reader = create_reader(config, opener=_loop_opener(opened))
    assert _first_event(reader) == BadgeRead("entrance", "rdm6300", CARD, 5)  # type: ignore[arg-type]
    assert opened == ["socket://laptop:7000"]


def _config(port: str, allow: bool = False) -> Any:
    entry: dict[str, Any] = {"name": "hall", "driver": "serial-line", "port": port}
    if allow:
        entry["allow_network_port"] = True
    return config_from_dict({"readers": [entry]})


def test_config_validate_names_the_port_and_the_option() -> None:
    findings = [f for f in check_config(_config("rfc2217://laptop:2217")) if f.level == "error"]
    assert any("allow_network_port" in f.message and "port" in f.key for f in findings)
    assert not [
        f
        for f in check_config(_config("rfc2217://laptop:2217", allow=True))
        if "network" in f.message
    ]


def test_the_boot_record_names_each_readers_driver_and_port_scheme() -> None:
    config = config_from_dict(
        {
            "readers": [
                {"name": "a", "driver": "serial-line", "port": "/dev/ttyUSB0"},
                {
                    "name": "b",
                    "driver": "rdm6300",
                    "port": "socket://x:1",
                    "allow_network_port": True,
                },
            ]
        }
    )
    data = boot_data(config, "0" * 64)
    assert data["reader_drivers"] == {"a": "serial-line", "b": "rdm6300"}
    assert data["port_schemes"] == {"a": "path", "b": "socket"}
    assert isinstance(config.readers[0], SerialLineConfig)
