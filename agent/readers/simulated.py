"""``simulated``: taps injected as ``UID\\n`` lines over a local Unix socket.

For the demo, the benchmarks and technicians without a card at hand: any
process that can open ``socket`` (e.g. ``printf '04A1B2C3\\n' | socat -
UNIX-CONNECT:/run/qatysu/sim.sock``) taps a card. Every line is one tap
(no repeat suppression: the injector decides). Records say ``driver:
simulated`` so the portal flags them (docs/reconciliation.md).
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.backoff import Backoff
from agent.clock import Clock
from agent.exceptions import ConfigError, ReaderError
from agent.hardware.events import BadgeRead, ReaderStatus
from agent.readers.base import Emit, Problem, Reader, ReaderConfig
from agent.readers.framing import Card, LineFramer

__all__ = ["SimulatedConfig", "SimulatedReader", "tap"]

logger = logging.getLogger(__name__)

_ANY_HEX = r"^\s*([0-9A-Fa-f:\- ]+?)\s*$"
_TICK_S = 0.2


@dataclass(frozen=True)
class SimulatedConfig(ReaderConfig):
    driver: str = field(default="simulated", init=False)
    socket: str = field(
        default="",  # a Unix socket path that accepts "UID\n" lines
        metadata={"comment": "Unix socket that takes 'UID' lines"},
    )


class SimulatedReader(Reader[SimulatedConfig]):
    """Its bus is the socket at ``socket_path``: tests tap it with :func:`tap`."""

    driver = "simulated"
    config_class = SimulatedConfig

    def __init__(
        self,
        name: str,
        socket_path: str | Path,
        *,
        clock: Clock | None = None,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        super().__init__(name)
        self.socket_path = Path(socket_path)
        self.clock = clock  # unused: taps carry no timing of their own
        self.retry = (retry_initial_s, retry_max_s)
        self.listening = threading.Event()  # for tests and `qatysu test reader`

    @classmethod
    def from_config(
        cls, config: SimulatedConfig, *, clock: Clock | None = None, **inject: Any
    ) -> SimulatedReader:
        if not config.socket:
            raise ConfigError(f"reader {config.name!r}: driver simulated needs 'socket'")
        return cls(config.name, config.socket, clock=clock, **inject)

    @classmethod
    def check(cls, config: SimulatedConfig) -> list[Problem]:
        problems = []
        if not config.socket:
            problems.append(Problem("error", "socket", "driver simulated needs a socket path"))
        problems.append(
            Problem(
                "warning",
                "driver",
                "simulated reader: the portal flags every read simulated_reader",
            )
        )
        return problems

    def probe(self) -> str:
        return f"simulated reader {self.name}: taps go to {self.socket_path}"

    def run(self, emit: Emit, stop: threading.Event) -> None:
        backoff = Backoff(*self.retry)
        faulted = False
        while not stop.is_set():
            try:
                server = self._listen()
            except ReaderError as exc:
                if not faulted:
                    faulted = True
                    emit(ReaderStatus(self.name, "fault", str(exc)))
                    logger.warning("reader %s: %s", self.name, exc)
                stop.wait(backoff.failure())
                continue
            if faulted:
                faulted = False
                emit(ReaderStatus(self.name, "recovered", f"listening on {self.socket_path}"))
            try:
                self._serve(server, emit, stop)
            finally:
                self.listening.clear()
                server.close()
                self._unlink()

    def _listen(self) -> socket.socket:
        self._unlink()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.socket_path.parent.mkdir(parents=True, exist_ok=True)
            server.bind(str(self.socket_path))
            server.listen()
        except OSError as exc:
            server.close()
            raise ReaderError(f"socket {self.socket_path}: {exc}") from exc
        server.setblocking(False)
        return server

    def _unlink(self) -> None:
        # Only ever remove a socket (a stale one from a previous run), never a file.
        try:
            if stat.S_ISSOCK(os.lstat(self.socket_path).st_mode):
                self.socket_path.unlink()
        except OSError:
            pass

    def _serve(self, server: socket.socket, emit: Emit, stop: threading.Event) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(server, selectors.EVENT_READ, None)
            self.listening.set()
            while not stop.is_set():
                for key, _ in sel.select(_TICK_S):
                    if key.data is None:
                        conn, _addr = server.accept()
                        conn.setblocking(False)
                        sel.register(conn, selectors.EVENT_READ, LineFramer(_ANY_HEX))
                        continue
                    conn = key.fileobj  # type: ignore[assignment]
                    try:
                        data = conn.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(conn)
                        conn.close()
                        continue
                    for result in key.data.feed(data):
                        if isinstance(result, Card):
                            emit(BadgeRead(self.name, self.driver, result.uid, result.uid_len))
                        else:
                            logger.warning("reader %s: ignored %r", self.name, result.raw)
            for key in list(sel.get_map().values()):
                if key.data is not None:
                    key.fileobj.close()  # type: ignore[union-attr]


def tap(socket_path: str | Path, *uids: str, timeout: float = 5.0) -> None:
    """Inject taps into a running simulated reader (demo, benchmarks, tests)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        try:
            conn.connect(str(socket_path))
            conn.sendall("".join(f"{uid}\n" for uid in uids).encode("ascii"))
        except OSError as exc:
            raise ReaderError(f"socket {socket_path}: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    """``python -m agent.readers.simulated SOCKET UID...``: tap cards from a shell."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: python -m agent.readers.simulated SOCKET UID [UID...]", file=sys.stderr)
        return 2
    try:
        tap(args[0], *args[1:])
    except ReaderError as exc:
        print(f"simulated: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
