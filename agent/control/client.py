"""The CLI's side of the control socket."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from agent.control.protocol import LineDecoder, decode_answer, encode
from agent.exceptions import ControlError

__all__ = ["ControlClient", "daemon_running"]


class ControlClient:
    """One request per connection: connect, send a line, read a line, close.

    ``timeout_s`` bounds the connect and each wait for data; a request that
    itself waits (``upload`` with ``wait_s``, ``watch`` with ``wait_ms``) gets
    that wait added so it is not cut short.
    """

    def __init__(self, path: Path, timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Send ``{"cmd": cmd, **fields}`` and return the answer object.

        Raises :class:`ControlError` (one line) when the daemon cannot be
        reached, answers an error, or closes without answering."""
        timeout = self.timeout_s + _extra_wait(fields)
        message = encode({"cmd": cmd, **fields})
        decoder = LineDecoder()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.path))
                sock.sendall(message)
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ControlError(
                            f"{self.path}: the daemon closed the connection without answering"
                        )
                    lines = decoder.feed(chunk)
                    if lines:
                        return decode_answer(lines[0])
        except TimeoutError as exc:
            raise ControlError(f"{self.path}: no answer to {cmd!r} within {timeout:g} s") from exc
        except FileNotFoundError as exc:
            raise ControlError(
                f"{self.path}: no control socket (is 'qatysu run' running?)"
            ) from exc
        except ConnectionRefusedError as exc:
            raise ControlError(f"{self.path}: the daemon is not running") from exc
        except PermissionError as exc:
            raise ControlError(f"{self.path}: permission denied (join the service group)") from exc
        except OSError as exc:
            raise ControlError(f"{self.path}: {exc.strerror or exc}") from exc


def _extra_wait(fields: dict[str, Any]) -> float:
    extra = 0.0
    wait_s = fields.get("wait_s")
    if isinstance(wait_s, int | float) and not isinstance(wait_s, bool) and wait_s > 0:
        extra += float(wait_s)
    wait_ms = fields.get("wait_ms")
    if isinstance(wait_ms, int | float) and not isinstance(wait_ms, bool) and wait_ms > 0:
        extra += float(wait_ms) / 1000
    return extra


def daemon_running(path: Path) -> bool:
    """True when something accepts connections on the control socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(path))
    except OSError:
        return False
    return True
