"""The daemon's condition, without I/O: reader health, timers, the status line."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from agent.hardware.events import ReaderStatus

__all__ = ["Interval", "ReaderHealth", "UploadState", "status_line"]


class ReaderHealth:
    """name → ``ok`` | ``fault``, from the readers' own fault and recovery events."""

    def __init__(self, names: Iterable[str]) -> None:
        self._states = dict.fromkeys(names, "ok")

    def apply(self, status: ReaderStatus) -> bool:
        """Record ``status``; True when it changed the reader's state."""
        new = "fault" if status.state == "fault" else "ok"
        changed = self._states.get(status.reader) != new
        self._states[status.reader] = new
        return changed

    def snapshot(self) -> dict[str, str]:
        return dict(self._states)

    @property
    def any_fault(self) -> bool:
        return "fault" in self._states.values()


class Interval:
    """A repeating deadline on a monotonic clock (heartbeats, status lines)."""

    def __init__(self, period_s: float, now: float) -> None:
        self.period_s = period_s
        self.next_at = now + period_s

    def due(self, now: float) -> bool:
        """True once per period; a late check does not make the next one early."""
        if now < self.next_at:
            return False
        self.next_at = max(self.next_at + self.period_s, now)
        return True


@dataclass
class UploadState:
    """What the last upload round left behind, for ``status`` and ``STATUS=``."""

    last_upload_ms: int | None = None  # wall time of the last round that reached the portal
    last_error: str | None = None
    last_receipt_server_ms: int | None = None
    uploaded_total: int = 0


def status_line(pending: int, upload: UploadState, now_ms: int | None = None) -> str:
    """One short line for ``systemctl status`` (systemd's ``STATUS=``)."""
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if upload.last_upload_ms is None:
        last = "no upload yet"
    else:
        ago = max(0, (now_ms - upload.last_upload_ms) // 1000)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(upload.last_upload_ms / 1000))
        last = f"last upload {stamp} UTC ({ago} s ago)"
    line = f"{pending} pending; {last}"
    if upload.last_error:
        line += f"; error: {upload.last_error}"
    return line[:200]
