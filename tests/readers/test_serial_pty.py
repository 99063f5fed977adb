"""rdm6300 and serial-line over a real pty with real pyserial."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import serial

from agent.clock import ManualClock
from agent.hardware.events import BadgeRead, ReaderStatus
from agent.readers.framing import em4100_frame
from agent.readers.rdm6300 import Rdm6300Reader
from agent.readers.serial_line import SerialLineReader
from tests.hardware.helpers import WAIT_S, Pty, Running

CARD_A = "0A1B2C3D4E"
CARD_B = "1F00E2A7C3"
CARD_C = "3300000001"


@pytest.fixture
def pty() -> Iterator[Pty]:
    p = Pty()
    yield p
    p.close()


def rdm(port: str, clock: ManualClock | None = None, **kwargs: Any) -> Rdm6300Reader:
    return Rdm6300Reader(
        "entrance",
        port,
        clock=clock or ManualClock(),
        retry_initial_s=0.05,
        retry_max_s=0.2,
        settle_s=0.2,
        **kwargs,
    )


def started(running: Running) -> Running:
    reader: Any = running.reader
    assert reader.port_open.wait(WAIT_S), "port never opened"
    return running


def test_valid_frames_give_five_byte_uids(pty: Pty) -> None:
    with Running(rdm(pty.name)) as run:
        started(run)
        pty.write(em4100_frame(CARD_A))
        assert run.next() == BadgeRead("entrance", "rdm6300", CARD_A, 5)
        pty.write(em4100_frame(CARD_B.lower()))
        assert run.next() == BadgeRead("entrance", "rdm6300", CARD_B, 5)


def test_bad_checksum_is_dropped(pty: Pty) -> None:
    good = em4100_frame(CARD_B)
    bad = bytearray(em4100_frame(CARD_A))
    bad[12] = ord("0") if bad[12] != ord("0") else ord("1")  # corrupt the checksum
    with Running(rdm(pty.name)) as run:
        started(run)
        pty.write(bytes(bad) + good)
        assert run.next().uid == CARD_B
        assert run.events.empty()


def test_split_frame_across_reads(pty: Pty) -> None:
    frame = em4100_frame(CARD_A)
    with Running(rdm(pty.name)) as run:
        started(run)
        for chunk in (frame[:1], frame[1:6], frame[6:13], frame[13:]):
            pty.write(chunk)
            time.sleep(0.3)  # longer than the read timeout: each chunk is its own read()
        assert run.next().uid == CARD_A


def test_merged_frames_and_noise_between(pty: Pty) -> None:
    noise = b"\x00\xff garbage \x02ZZ\x03\x02\x0212345"
    data = em4100_frame(CARD_A) + em4100_frame(CARD_B) + noise + em4100_frame(CARD_C)
    with Running(rdm(pty.name)) as run:
        started(run)
        pty.write(data)
        assert [run.next().uid for _ in range(3)] == [CARD_A, CARD_B, CARD_C]


def test_card_held_in_field_reads_once_per_presentation(pty: Pty) -> None:
    clock = ManualClock()
    with Running(rdm(pty.name, clock)) as run:
        started(run)
        for _ in range(5):  # the module repeats the id while the card stays
            pty.write(em4100_frame(CARD_A))
            clock.advance(0.1)
        pty.write(em4100_frame(CARD_C))  # a sentinel: everything before it was framed
        assert run.next().uid == CARD_A
        assert run.next().uid == CARD_C
        clock.advance(1.0)  # card A away for longer than 0.5 s
        pty.write(em4100_frame(CARD_A))
        assert run.next().uid == CARD_A


def line_reader(port: str) -> SerialLineReader:
    return SerialLineReader(
        "entrance",
        port,
        pattern=r"([0-9A-Fa-f]{10})",
        clock=ManualClock(),
        retry_initial_s=0.05,
        retry_max_s=0.2,
        settle_s=0.2,
    )


DRIVERS = {
    "rdm6300": (rdm, em4100_frame),
    "serial-line": (line_reader, lambda uid: uid.encode() + b"\r\n"),
}


@pytest.mark.parametrize("driver", sorted(DRIVERS))
def test_port_that_disappears_and_returns(tmp_path: Path, driver: str) -> None:
    make_reader, encode = DRIVERS[driver]
    link = tmp_path / "ttyUSB0"
    first = Pty()
    os.symlink(first.name, link)
    reader: Any = make_reader(str(link))
    with Running(reader) as run:
        started(run)
        first.write(encode(CARD_A))
        assert run.next() == BadgeRead("entrance", driver, CARD_A, 5)
        first.close()  # unplugged
        link.unlink()
        fault = run.next()
        assert isinstance(fault, ReaderStatus) and fault.state == "fault"
        assert str(link) in fault.detail
        second = Pty()
        try:
            os.symlink(second.name, link)  # plugged back in
            assert reader.port_open.wait(WAIT_S)
            second.write(encode(CARD_B))
            assert run.next() == ReaderStatus("entrance", "recovered", f"port {link} open")
            assert run.next().uid == CARD_B
        finally:
            second.close()


def test_missing_port_at_start_is_one_fault_then_recovered(tmp_path: Path) -> None:
    link = tmp_path / "serial0"
    with Running(rdm(str(link))) as run:
        fault = run.next()
        assert isinstance(fault, ReaderStatus) and fault.state == "fault"
        p = Pty()
        try:
            os.symlink(p.name, link)
            assert run.next().state == "recovered"  # no second fault while retrying
        finally:
            p.close()


def test_loop_url() -> None:
    ports: list[Any] = []

    def opener(url: str, **kwargs: Any) -> Any:
        port = serial.serial_for_url(url, **kwargs)
        ports.append(port)
        return port

    with Running(rdm("loop://", opener=opener)) as run:
        started(run)
        ports[0].write(em4100_frame(CARD_C))  # loop:// reads back what was written
        assert run.next() == BadgeRead("entrance", "rdm6300", CARD_C, 5)


def test_probe_translates_serial_exception(tmp_path: Path) -> None:
    from agent.exceptions import ReaderError

    with pytest.raises(ReaderError, match=r"port .*nothing-here"):
        rdm(str(tmp_path / "nothing-here")).probe()
    assert "loop://" in rdm("loop://").probe()


def test_serial_line_reader_with_pattern(pty: Pty) -> None:
    reader = SerialLineReader(
        "hall",
        pty.name,
        pattern=r"UID:\s*([0-9A-Fa-f:]{8,})",
        clock=ManualClock(),
    )
    with Running(reader) as run:
        assert reader.port_open.wait(WAIT_S)
        pty.write(b"boot v1.2\r\nUID: 04:a1:b2:c3\r\nUID: 04 ZZ\r\nUID: 04112233445566\r\n")
        assert run.next() == BadgeRead("hall", "serial-line", "04A1B2C3", 4)
        assert run.next() == BadgeRead("hall", "serial-line", "04112233445566", 7)


def test_spy_url_logs_what_the_reader_read(pty: Pty, tmp_path: Path) -> None:
    log = tmp_path / "spy.txt"
    reader = rdm(f"spy://{pty.name}?file={log}")
    with Running(reader) as run:
        started(run)
        pty.write(em4100_frame(CARD_B))
        assert run.next().uid == CARD_B
    assert "RX" in log.read_text()  # pyserial's spy handler wrote its hex dump


def test_flapping_port_is_one_fault() -> None:
    opened: list[Any] = []

    def opener(url: str, **kwargs: Any) -> Any:
        port = serial.serial_for_url(url, **kwargs)
        opened.append(port)
        if len(opened) <= 5:
            port.close()  # opens, then fails on the first read: a flaky adapter
        return port

    with Running(rdm("loop://", opener=opener)) as run:
        assert run.next().state == "fault"
        assert run.next() == ReaderStatus("entrance", "recovered", "port loop:// open")
        opened[-1].write(em4100_frame(CARD_A))
        assert run.next().uid == CARD_A
    assert len(opened) == 6


def test_a_second_process_on_the_port_is_refused(pty: Pty) -> None:
    from agent.exceptions import ReaderError

    reader = rdm(pty.name)
    with Running(reader) as run:
        started(run)
        with pytest.raises(ReaderError, match="lock"):
            rdm(pty.name).probe()
        pty.write(em4100_frame(CARD_A))
        assert run.next().uid == CARD_A
