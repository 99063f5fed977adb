"""The one owner of a process's chain and buffer, shared between threads.

Readers, sensors, the heartbeat, the uploader, the control socket and the
offline CLI all reach the buffer through :class:`RecordStore`, whose
re-entrant lock makes each call whole: a record is built, signed and fsync'd
before anyone else touches the buffer, and an acknowledgement never
interleaves with an append. Every method takes the lock for its own duration
only, so the uploader never holds it across a network call. It meets the
uplink's :class:`~agent.records.interfaces.UploadStore` and
:class:`~agent.records.interfaces.BundleStore`, and adds what the daemon needs:
listeners told of each durable record, ``alarm`` records for the disk, and an
orderly close.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.buffer.buffer import RecordBuffer
from agent.buffer.state import LostRange
from agent.clock import Clock, SystemClock
from agent.config import AgentConfig
from agent.exceptions import BufferFullError
from agent.identity import load_key_file
from agent.protocol import public_key_b64
from agent.records.chain import ChainWriter

__all__ = ["RecordStore", "open_store"]

logger = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]


class RecordStore:
    """``write`` raises :class:`BufferFullError` when a record could not be made
    durable; the store counts those and, once an append works again, records
    an ``alarm`` (kind ``disk_full``) saying how many events were not stored.
    Crossing the buffer's quota warning level records an ``alarm`` (kind
    ``quota_warning``) once per crossing. After :meth:`close` every buffer
    call raises (the buffer is closed)."""

    def __init__(
        self, buffer: RecordBuffer, key: Ed25519PrivateKey, device_id: str, clock: Clock
    ) -> None:
        self.buffer = buffer
        self.chain = ChainWriter(buffer, key, device_id, clock)
        self.lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._refused = 0
        self._refused_detail = ""
        self._quota_warned = buffer.quota_warning
        self._closed = False

    @property
    def device_id(self) -> str:
        return self.chain.device_id

    @property
    def public_key(self) -> str:
        """The device's public key, base64 (what a bundle carries)."""
        return public_key_b64(self.chain.key)

    @property
    def clock(self) -> Clock:
        """The clock the records' times come from."""
        return self.chain.clock

    def add_listener(self, listener: Listener) -> None:
        """Called with each durable record, under the lock: keep it short."""
        self._listeners.append(listener)

    # --- writing ----------------------------------------------------------------------

    def write(self, type: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Append the next record; it is durable when this returns."""
        with self.lock:
            try:
                record = self.chain.write(type, data)
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
            records = self.chain.declare_losses()
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
            record = self.chain.write("alarm", {"kind": kind, "detail": detail[:300]})
        except BufferFullError:
            return  # counted with the next refusal
        self._appended(record)
        logger.error("alarm %s: %s", kind, detail)

    # --- reading and acknowledging ----------------------------------------------------

    def pending(self, limit: int | None = None, after_seq: int = 0) -> list[dict[str, Any]]:
        with self.lock:
            return self.buffer.pending(limit, after_seq)

    def get(self, seq: int) -> dict[str, Any] | None:
        with self.lock:
            return self.buffer.get(seq)

    def knows(self, seq: int, record_hash: str) -> bool:
        with self.lock:
            return self.buffer.knows(seq, record_hash)

    def acknowledge(self, receipt: dict[str, Any]) -> int:
        with self.lock:
            return self.buffer.acknowledge(receipt)

    def quarantine_record(self, seq: int, reason: str) -> LostRange:
        with self.lock:
            return self.buffer.quarantine_record(seq, reason)

    @property
    def last_ack(self) -> tuple[int, str]:
        with self.lock:
            return self.buffer.last_ack

    @property
    def head(self) -> tuple[int, str]:
        with self.lock:
            return self.buffer.head

    @property
    def pending_count(self) -> int:
        with self.lock:
            return self.buffer.pending_count

    @property
    def oldest_pending_wall_ms(self) -> int | None:
        with self.lock:
            return None if self._closed else self.buffer.oldest_pending_wall_ms

    def usage(self) -> tuple[int, int]:
        with self.lock:
            return self.buffer.usage()

    # --- closing ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Wait for the write in progress, then close (unlock) the buffer."""
        with self.lock:
            if not self._closed:
                self._closed = True
                self.buffer.close()


def open_store(config: AgentConfig, clock: Clock | None = None) -> RecordStore:
    """Load the device key and open (lock) the buffer; the caller closes the store.

    Raises BufferLockedError while another process (the daemon) holds the buffer."""
    clock = clock or SystemClock()
    key = load_key_file(config.key_path)
    buffer = RecordBuffer(config.device.state_dir, config.buffer, clock=clock).open()
    return RecordStore(buffer, key, config.portal.device_id, clock)
