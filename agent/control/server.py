"""The daemon's side of the control socket: a handler table on an AF_UNIX socket.

Each connection gets a thread (``upload`` and ``watch`` wait), reads request
lines and answers each with one line. A handler raising a :class:`QatysuError`
(or a protocol error) answers ``{"error": ...}``; anything else is logged and answered as an
internal error, never taking the daemon down.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent.control.client import daemon_running
from agent.control.protocol import LineDecoder, decode_request, encode, error_answer
from agent.exceptions import ControlError, ProtocolError, QatysuError

__all__ = ["ControlServer", "Handler"]

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]

_ACCEPT_POLL_S = 0.2


class ControlServer:
    """Serves ``handlers`` (command name → handler of the request's other fields)."""

    def __init__(self, path: Path, handlers: Mapping[str, Handler], mode: int = 0o660) -> None:
        self.path = Path(path)
        self.handlers = dict(handlers)
        self.mode = mode
        self._sock: socket.socket | None = None
        self._inode: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind (refusing if another daemon answers there) and serve in a thread."""
        self._sock = _bind(self.path, self.mode)
        self._inode = os.stat(self.path).st_ino
        self._thread = threading.Thread(target=self._accept_loop, name="control", daemon=True)
        self._thread.start()
        logger.info("control socket at %s", self.path)

    def close(self) -> None:
        """Stop accepting and remove the socket file if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.path).st_ino == self._inode:
                self.path.unlink()

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def answer(self, cmd: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Dispatch one request; never raises."""
        handler = self.handlers.get(cmd)
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            return error_answer(f"unknown command {cmd!r} (known: {known})")
        try:
            answer = handler(fields)
        except (QatysuError, ProtocolError) as exc:
            return error_answer(str(exc))
        except Exception as exc:
            logger.exception("control command %r failed", cmd)
            return error_answer(f"internal error in {cmd!r}: {type(exc).__name__}: {exc}")
        if set(answer) == {"error"}:
            # Only error answers look like this; a handler must not send one by accident.
            return error_answer(f"{cmd!r} answered an error: {answer['error']}")
        return answer

    def _accept_loop(self) -> None:
        assert self._sock is not None
        listener = self._sock
        listener.settimeout(_ACCEPT_POLL_S)
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                logger.exception("control socket accept failed")
                continue
            threading.Thread(
                target=self._serve, args=(conn,), name="control-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        decoder = LineDecoder()
        with conn:
            conn.settimeout(60.0)
            try:
                while not self._stop.is_set():
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    try:
                        lines = decoder.feed(chunk)
                    except ControlError as exc:
                        conn.sendall(encode(error_answer(str(exc))))
                        return
                    for line in lines:
                        try:
                            cmd, fields = decode_request(line)
                        except ControlError as exc:
                            conn.sendall(encode(error_answer(str(exc))))
                            continue
                        conn.sendall(encode(self.answer(cmd, fields)))
            except OSError:
                return  # the client went away; nothing to clean up


def _bind(path: Path, mode: int) -> socket.socket:
    if path.exists() or path.is_symlink():
        if daemon_running(path):
            raise ControlError(f"{path}: another daemon is already serving this control socket")
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ControlError(
                f"{path}: exists and is not a socket; remove it or change device.control_socket"
            )
        path.unlink()  # stale, left by a daemon that was killed
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ControlError(f"{path.parent}: cannot create: {exc.strerror or exc}") from exc
    # Bind under a temporary name, set the mode, then rename: the socket is
    # never reachable at its real path with the umask's wider mode.
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(temporary))
        os.chmod(temporary, mode)
        os.replace(temporary, path)
        sock.listen(16)
    except OSError as exc:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise ControlError(f"{path}: cannot listen: {exc.strerror or exc}") from exc
    return sock
