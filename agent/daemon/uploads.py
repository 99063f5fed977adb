"""The uploader's thread: soon after new records, on a timer, and when asked.

After a round that reached the portal, a new record starts the next round
after ``portal.upload_delay_ms`` (taps arriving together go in one batch).
After a failure, new records do not cut the uploader's backoff short: only
its own delay, or an explicit ``qatysu upload``, starts the next round.
Rounds never overlap (the portal client is not shared between threads).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from agent.clock import Clock
from agent.daemon.health import UploadState
from agent.uplink.uploader import UploadResult

__all__ = ["RoundRunner", "UploadLoop"]

logger = logging.getLogger(__name__)


class RoundRunner(Protocol):
    """What the loop needs from the uplink's :class:`~agent.uplink.uploader.Uploader`."""

    last_upload_ms: int | None
    last_receipt_server_ms: int | None
    clock: Clock

    def run_once(self, *, force: bool = False, until: float | None = None) -> UploadResult: ...

    def next_delay_s(self) -> float: ...

    def close(self) -> None: ...


class UploadLoop:
    def __init__(
        self,
        uploader: RoundRunner,
        state: UploadState,
        *,
        delay_s: float,
        on_round: Callable[[UploadResult], object] | None = None,
    ) -> None:
        self.uploader = uploader
        self.state = state
        self.delay_s = delay_s
        self.on_round = on_round  # called with each UploadResult (feedback, status line)
        self._round = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._ok = True  # the last round reached the portal
        self.thread = threading.Thread(target=self._run, name="uploader", daemon=True)

    def notify_new_record(self, record: object = None) -> None:
        """The writer appended a record (called under the writer's lock: only sets a flag)."""
        self._wake.set()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def upload_now(self, wait_s: float) -> UploadResult | None:
        """Run a round now, backoff or not (after the one in progress), ending it at
        ``wait_s``; None if the round in progress did not end by then."""
        until = self.uploader.clock.monotonic() + max(0.0, wait_s)
        if not self._round.acquire(timeout=max(0.0, wait_s)):
            return None
        try:
            return self._run_round(force=True, until=until)
        finally:
            self._round.release()

    def _run(self) -> None:
        next_at = time.monotonic()  # a first round right away: drain the backlog
        while not self._stop.is_set():
            now = time.monotonic()
            if self._wake.is_set():
                self._wake.clear()
                if self._ok:
                    next_at = min(next_at, now + self.delay_s)
            if now >= next_at:
                with self._round:
                    self._run_round()
                next_at = time.monotonic() + max(0.0, self._next_delay())
                continue
            self._wake.wait(min(next_at - now, 1.0))

    def _next_delay(self) -> float:
        try:
            return float(self.uploader.next_delay_s())
        except Exception:
            logger.exception("uploader delay failed")
            return 30.0

    def _run_round(self, *, force: bool = False, until: float | None = None) -> UploadResult:
        if self._stop.is_set():
            return UploadResult(0, -1, "the daemon is stopping")
        try:
            result = self.uploader.run_once(force=force, until=until)
        except Exception as exc:  # a bug in a round must not end uploading
            logger.exception("upload round failed")
            result = UploadResult(0, -1, f"{type(exc).__name__}: {exc}")
        self._ok = result.error is None
        state = self.state
        state.uploaded_total += result.uploaded
        state.last_error = result.error
        state.last_upload_ms = self.uploader.last_upload_ms
        state.last_receipt_server_ms = self.uploader.last_receipt_server_ms
        if self.on_round is not None:
            try:
                self.on_round(result)
            except Exception:
                logger.exception("upload round callback failed")
        return result
