"""The daemon's one owner of the chain and the buffer.

Readers, sensors, the heartbeat, the uploader and the control socket all
reach the buffer through :class:`RecordWriter`, whose lock makes each call
whole: a record is built, signed and fsync'd before anyone else touches the
buffer, and an acknowledgement never interleaves with an append. It is the
uploader's ``UploadStore``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from agent.buffer import LostRange, RecordBuffer
from agent.chain import ChainWriter
from agent.clock import Clock, SystemClock
from agent.config import AgentConfig
from agent.exceptions import BufferFullError, RecordBufferError
from agent.identity import load_key_file
from agent.protocol import public_key_b64

__all__ = ["RecordWriter", "open_writer"]

logger = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]


class RecordWriter:
    """Thread-safe wrapper of :class:`ChainWriter` and :class:`RecordBuffer`.

    ``write`` raises :class:`BufferFullError` when the record could not be
    made durable; the writer remembers how many were refused and, once an
    append works again, records an ``alarm`` saying so. Crossing the quota
    warning level also records an ``alarm`` (once per crossing).
    """

    def __init__(self, buffer: RecordBuffer, chain: ChainWriter, public_key: str) -> None:
        self._buffer = buffer
        self._chain = chain
        self.device_id = chain.device_id
        self.public_key = public_key
        self._lock = threading.RLock()
        self._closed = False
        self.new_records = threading.Event()  # set by every append; the uploader clears it
        self._listeners: list[Listener] = []
        self._refused = 0
        self._refused_detail = ""
        self._quota_warned = buffer.quota_warning
        self.last_write_error: str | None = None

    # --- appending ------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Called with each durable record, under the lock (keep it short)."""
        self._listeners.append(listener)

    def write(self, type: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Append the next record; durable when this returns."""
        with self._lock:
            self._check_open()
            try:
                record = self._chain.write(type, data)
            except BufferFullError as exc:
                self._refused += 1
                self._refused_detail = str(exc)
                self.last_write_error = str(exc)
                raise
            self.last_write_error = None
            self._appended(record)
            if self._refused:
                self._alarm_after_refusals()
            if self._buffer.quota_warning != self._quota_warned:
                self._quota_warned = not self._quota_warned
                if self._quota_warned:
                    self._alarm_quota()
            return record

    def declare_losses(self) -> list[dict[str, Any]]:
        with self._lock:
            self._check_open()
            records = self._chain.declare_losses()
            for record in records:
                self._appended(record)
            return records

    def _appended(self, record: dict[str, Any]) -> None:
        self.new_records.set()
        for listener in self._listeners:
            try:
                listener(record)
            except Exception:
                logger.exception("record listener failed")

    def _alarm_after_refusals(self) -> None:
        count, detail = self._refused, self._refused_detail
        self._refused = 0
        record = self._chain.write(
            "alarm",
            {"kind": "disk_full", "detail": f"{count} event(s) could not be stored: {detail}"},
        )
        self._appended(record)
        logger.error("alarm: %d event(s) could not be stored (%s)", count, detail)

    def _alarm_quota(self) -> None:
        used, quota = self._buffer.usage()
        detail = f"buffer uses {used} of {quota} bytes"
        try:
            record = self._chain.write("alarm", {"kind": "quota_warning", "detail": detail})
        except BufferFullError:
            return  # counted by the next refusal
        self._appended(record)
        logger.warning("alarm: %s", detail)

    # --- UploadStore ----------------------------------------------------------

    def pending(self, limit: int | None = None, after_seq: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            self._check_open()
            return self._buffer.pending(limit, after_seq)

    def get(self, seq: int) -> dict[str, Any] | None:
        with self._lock:
            self._check_open()
            return self._buffer.get(seq)

    def knows(self, seq: int, record_hash: str) -> bool:
        with self._lock:
            self._check_open()
            return self._buffer.knows(seq, record_hash)

    def acknowledge(self, receipt: dict[str, Any]) -> int:
        """Act on a signature-verified receipt (the buffer checks the hash)."""
        with self._lock:
            self._check_open()
            return self._buffer.acknowledge(receipt)

    def quarantine_record(self, seq: int, reason: str) -> LostRange:
        with self._lock:
            self._check_open()
            return self._buffer.quarantine_record(seq, reason)

    def skip_to(self, seq: int, reason: str) -> LostRange | None:
        with self._lock:
            self._check_open()
            return self._buffer.skip_to(seq, reason)

    @property
    def last_ack(self) -> tuple[int, str]:
        with self._lock:
            return self._buffer.last_ack

    @property
    def head(self) -> tuple[int, str]:
        with self._lock:
            return self._buffer.head

    @property
    def anchor(self) -> str:
        with self._lock:
            return self._buffer.anchor

    @property
    def pending_count(self) -> int:
        with self._lock:
            return self._buffer.pending_count

    @property
    def oldest_pending_wall_ms(self) -> int | None:
        with self._lock:
            if self._closed:
                return None
            return self._buffer.oldest_pending_wall_ms

    def usage(self) -> tuple[int, int]:
        with self._lock:
            return self._buffer.usage()

    # --- life cycle -----------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Wait for the write in progress, then close the buffer; later calls fail."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._buffer.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RecordBufferError("the daemon is stopping: the buffer is closed")


def open_writer(config: AgentConfig, clock: Clock | None = None) -> RecordWriter:
    """Load the device key and open (lock) the buffer; the caller closes the writer.

    Raises BufferLockedError while another process (the daemon) holds the buffer."""
    clock = clock or SystemClock()
    key = load_key_file(config.key_path)
    buffer = RecordBuffer(config.device.state_dir, config.buffer, clock=clock).open()
    chain = ChainWriter(buffer, key, config.portal.device_id, clock)
    return RecordWriter(buffer, chain, public_key_b64(key))
