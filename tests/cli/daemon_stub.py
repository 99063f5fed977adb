"""The daemon's side of the control socket for CLI tests: the real ControlServer with
handlers that answer as the docs/daemon.md says, recording what they were asked."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.control.server import ControlServer


class DaemonSide:
    def __init__(self) -> None:
        self.status: dict[str, Any] = {
            "running": True,
            "pid": 4242,
            "device_id": "dev-1",
            "pending": 7,
            "oldest_pending_ms": 150_000,  # an age, as the daemon sends it
            "head_seq": 12,
            "head_hash": "ab" * 32,
            "last_ack_seq": 5,
            "last_receipt_server_ms": 1_764_000_000_000,
            "last_upload_ms": 1_764_000_000_000,
            "last_upload_error": None,
            "clock_synced": True,
            "readers": {"entrance": "ok"},
            "doors": {"main": "closed"},
            "uptime_s": 60,
        }
        # What ``export`` answers: a test sets it (a compromised daemon may name anything).
        self.export: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._cond = threading.Condition()

    def push(self, *events: dict[str, Any]) -> None:
        with self._cond:
            self.events.extend(events)
            self._cond.notify_all()

    def handlers(self) -> dict[str, Any]:
        def status(fields: dict[str, Any]) -> dict[str, Any]:
            self.requests.append(("status", fields))
            return self.status

        def watch(fields: dict[str, Any]) -> dict[str, Any]:
            self.requests.append(("watch", fields))
            # Cursor n means "the first n - 1 events seen"; 0 asks for "from now".
            after = int(fields.get("after", 0))
            with self._cond:
                if after == 0:
                    return {"cursor": len(self.events) + 1, "events": []}
                self._cond.wait_for(
                    lambda: len(self.events) >= after, timeout=fields.get("wait_ms", 0) / 1000
                )
                return {"cursor": len(self.events) + 1, "events": self.events[after - 1 :]}

        def feedback(fields: dict[str, Any]) -> dict[str, Any]:
            self.requests.append(("feedback", fields))
            return {"ok": True}

        def export(fields: dict[str, Any]) -> dict[str, Any]:
            self.requests.append(("export", fields))
            return dict(self.export)

        return {"status": status, "watch": watch, "feedback": feedback, "export": export}


@contextmanager
def daemon_side(path: Path) -> Iterator[DaemonSide]:
    side = DaemonSide()
    with ControlServer(path, side.handlers()):
        yield side
