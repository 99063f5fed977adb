"""The control socket: framing, the handler table, errors, mode and cleanup."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from agent.control import ControlClient, daemon_running
from agent.control.protocol import LineDecoder, decode_answer, decode_request, encode
from agent.control.server import ControlServer
from agent.exceptions import ControlError, ReceiptError


def test_decoder_splits_lines_across_chunks() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b'{"cmd":"st') == []
    assert decoder.feed(b'atus"}\n{"cmd":"x"}\n{"c') == [b'{"cmd":"status"}', b'{"cmd":"x"}']
    assert decoder.pending == b'{"c'


def test_decoder_refuses_an_endless_line() -> None:
    decoder = LineDecoder(max_line=16)
    with pytest.raises(ControlError, match="longer than 16"):
        decoder.feed(b"x" * 17)


@pytest.mark.parametrize(
    ("line", "message"),
    [(b"not json", "not JSON"), (b"[1]", "not a JSON object"), (b'{"x":1}', "no 'cmd'")],
)
def test_bad_requests_are_one_line_errors(line: bytes, message: str) -> None:
    with pytest.raises(ControlError, match=message):
        decode_request(line)


def test_request_and_answer_round_trip() -> None:
    assert decode_request(encode({"cmd": "upload", "wait_s": 3})) == ("upload", {"wait_s": 3})
    with pytest.raises(ControlError, match=r"^boom$"):
        decode_answer(encode({"error": "boom"}))
    # An upload answer reports its round's error beside its counts: not an error answer.
    upload = {"uploaded": 0, "pending": 3, "error": "portal unreachable"}
    assert decode_answer(encode(upload)) == upload


def _server(path: Path) -> ControlServer:
    def status(fields: dict[str, Any]) -> dict[str, Any]:
        return {"running": True, "echo": fields}

    def refuse(fields: dict[str, Any]) -> dict[str, Any]:
        raise ReceiptError("receipt signed by another key")

    def crash(fields: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug\nsecond line")

    return ControlServer(path, {"status": status, "ack": refuse, "crash": crash})


def test_client_server_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run" / "control.sock"
    assert not daemon_running(path)
    with _server(path):
        assert daemon_running(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        client = ControlClient(path)
        assert client.request("status", x=1) == {"running": True, "echo": {"x": 1}}
        with pytest.raises(ControlError, match=r"^receipt signed by another key$"):
            client.request("ack", receipt={})
        with pytest.raises(ControlError, match="unknown command 'nope'"):
            client.request("nope")
        with pytest.raises(ControlError, match=r"internal error in 'crash'.*bug$"):
            client.request("crash")
    assert not path.exists()
    assert not daemon_running(path)


def test_several_requests_on_one_connection_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    with _server(path), socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(b'garbage\n{"cmd":"status"}\n')
        data = b""
        while data.count(b"\n") < 2:
            data += sock.recv(4096)
        first, second = (json.loads(x) for x in data.splitlines())
        assert "not JSON" in first["error"]
        assert second["running"] is True


def test_client_without_daemon_names_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "none.sock"
    with pytest.raises(ControlError, match=f"{path}: no control socket"):
        ControlClient(path).request("status")


def test_stale_socket_is_replaced_and_a_live_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a killed daemon's leftover
    assert not daemon_running(path)
    with _server(path):
        assert ControlClient(path).request("status")["running"] is True
        with pytest.raises(ControlError, match="another daemon"):
            _server(path).start()
        assert daemon_running(path)


def test_a_regular_file_is_not_removed(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    path.write_text("keep me")
    with pytest.raises(ControlError, match="not a socket"):
        _server(path).start()
    assert path.read_text() == "keep me"


def test_client_timeout_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "slow.sock"
    release = threading.Event()

    def slow(fields: dict[str, Any]) -> dict[str, Any]:
        release.wait(5)
        return {}

    with ControlServer(path, {"slow": slow}):
        with pytest.raises(ControlError, match=r"no answer to 'slow' within 0.3 s"):
            ControlClient(path, timeout_s=0.3).request("slow")
        release.set()


def test_socket_is_removed_only_if_ours(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    server = _server(path)
    server.start()
    os.unlink(path)
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(path))
    try:
        server.close()
        assert path.exists()
    finally:
        other.close()
