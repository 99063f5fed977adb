"""The daemon's one owner of the chain and the buffer.

Readers, sensors, the heartbeat, the uploader and the control socket all
reach the buffer through :class:`RecordWriter`, whose lock makes each call
whole: a record is built, signed and fsync'd before anyone else touches the
buffer, and an acknowledgement never interleaves with an append. It is the
uplink's :class:`~agent.uplink.store.ChainStore` (the uploader's
``UploadStore``) plus what the daemon needs on top: listeners told of each
durable record, ``alarm`` records for the disk, and an orderly close.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from agent.buffer import RecordBuffer
from agent.chain import ChainWriter
from agent.clock import Clock, SystemClock
from agent.config import AgentConfig
from agent.exceptions import BufferFullError
from agent.identity import load_key_file
from agent.uplink.store import ChainStore

__all__ = ["RecordWriter", "open_writer"]

logger = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]


class RecordWriter(ChainStore):
    """``write`` raises :class:`BufferFullError` when a record could not be made
    durable; the writer counts those and, once an append works again, records
    an ``alarm`` (kind ``disk_full``) saying how many events were not stored.
    Crossing the buffer's quota warning level records an ``alarm`` (kind
    ``quota_warning``) once per crossing. After :meth:`close` every buffer
    call raises (the buffer is closed)."""

    def __init__(self, buffer: RecordBuffer, chain: ChainWriter) -> None:
        super().__init__(buffer, chain, threading.RLock())
        self._listeners: list[Listener] = []
        self._refused = 0
        self._refused_detail = ""
        self._quota_warned = buffer.quota_warning
        self._closed = False

    def add_listener(self, listener: Listener) -> None:
        """Called with each durable record, under the lock: keep it short."""
        self._listeners.append(listener)

    def write(self, type: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Append the next record; it is durable when this returns."""
        with self.lock:
            try:
                record = self.writer.write(type, data)
            except BufferFullError as exc:
                self._refused += 1
                self._refused_detail = str(exc)
                raise
            self._appended(record)
            if self._refused:
                self._alarm(
                    "disk_full",
                    f"{self._refused} event(s) could not be stored: {self._refused_detail}",
                )
                self._refused = 0
            if self.buffer.quota_warning != self._quota_warned:
                self._quota_warned = not self._quota_warned
                if self._quota_warned:
                    used, quota = self.buffer.usage()
                    self._alarm("quota_warning", f"buffer uses {used} of {quota} bytes")
            return record

    def declare_losses(self) -> list[dict[str, Any]]:
        with self.lock:
            records = self.writer.declare_losses()
            for record in records:
                self._appended(record)
            return records

    def _appended(self, record: dict[str, Any]) -> None:
        for listener in self._listeners:
            try:
                listener(record)
            except Exception:
                logger.exception("record listener failed")

    def _alarm(self, kind: str, detail: str) -> None:
        try:
            record = self.writer.write("alarm", {"kind": kind, "detail": detail[:300]})
        except BufferFullError:
            return  # counted with the next refusal
        self._appended(record)
        logger.error("alarm %s: %s", kind, detail)

    # --- what the daemon reads besides the UploadStore -------------------------------

    def get(self, seq: int) -> dict[str, Any] | None:
        with self.lock:
            return self.buffer.get(seq)

    @property
    def oldest_pending_wall_ms(self) -> int | None:
        with self.lock:
            return None if self._closed else self.buffer.oldest_pending_wall_ms

    def usage(self) -> tuple[int, int]:
        with self.lock:
            return self.buffer.usage()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Wait for the write in progress, then close (unlock) the buffer."""
        with self.lock:
            if not self._closed:
                self._closed = True
                self.buffer.close()


def open_writer(config: AgentConfig, clock: Clock | None = None) -> RecordWriter:
    """Load the device key and open (lock) the buffer; the caller closes the writer.

    Raises BufferLockedError while another process (the daemon) holds the buffer."""
    clock = clock or SystemClock()
    key = load_key_file(config.key_path)
    buffer = RecordBuffer(config.device.state_dir, config.buffer, clock=clock).open()
    return RecordWriter(buffer, ChainWriter(buffer, key, config.portal.device_id, clock))
