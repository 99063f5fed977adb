"""A thread-safe :class:`~agent.uplink.uploader.UploadStore` over a buffer and its writer.

The daemon owns one :class:`RecordBuffer` and one :class:`ChainWriter`; the
reader threads and the uploader share them through this lock. Every method
takes the lock for its own duration only, so the uploader never holds it
across a network call.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from agent.buffer import LostRange, RecordBuffer
from agent.chain import ChainWriter
from agent.protocol import public_key_b64

__all__ = ["ChainStore"]


class ChainStore:
    def __init__(
        self,
        buffer: RecordBuffer,
        writer: ChainWriter,
        lock: threading.RLock | None = None,
    ) -> None:
        self.buffer = buffer
        self.writer = writer
        self.lock = lock or threading.RLock()

    @property
    def device_id(self) -> str:
        return self.writer.device_id

    @property
    def public_key(self) -> str:
        """The device's public key, base64 (what a bundle carries)."""
        return public_key_b64(self.writer.key)

    def pending(self, limit: int | None = None, after_seq: int = 0) -> list[dict[str, Any]]:
        with self.lock:
            return self.buffer.pending(limit, after_seq)

    def knows(self, seq: int, record_hash: str) -> bool:
        with self.lock:
            return self.buffer.knows(seq, record_hash)

    def acknowledge(self, receipt: dict[str, Any]) -> int:
        with self.lock:
            return self.buffer.acknowledge(receipt)

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

    def quarantine_record(self, seq: int, reason: str) -> LostRange:
        with self.lock:
            return self.buffer.quarantine_record(seq, reason)

    def write(self, type: str, data: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            return self.writer.write(type, data)

    def declare_losses(self) -> list[dict[str, Any]]:
        with self.lock:
            return self.writer.declare_losses()
