"""Builds and signs the device's next hash-chained record and hands it to the buffer.

The one place that turns an event into the next record: seq from the
buffer, ``prev`` from its head (64 zeros after the newest records were lost,
docs/protocol.md), ``anchor`` from the newest accepted receipt, time from the
injected clock. The buffer is whatever meets :class:`ChainBuffer` (in the
device, :class:`agent.buffer.buffer.RecordBuffer`, whose ``append`` is durable),
so this module loads neither TinyDB nor any other I/O library.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.buffer.state import LostRange
from agent.clock import Clock
from agent.protocol.records import ZERO_HASH, build_record

__all__ = ["ChainBuffer", "ChainWriter"]

logger = logging.getLogger(__name__)


class ChainBuffer(Protocol):
    """What the chain needs from the buffer that stores it."""

    @property
    def head(self) -> tuple[int, str]: ...

    @property
    def next_seq(self) -> int: ...

    @property
    def anchor(self) -> str: ...

    @property
    def lost_ranges(self) -> list[LostRange]: ...

    def append(self, record: dict[str, Any]) -> None: ...

    def mark_declared(self, lost: LostRange) -> None: ...


class ChainWriter:
    """Single-threaded, like the buffer it writes; the daemon shares it through
    :class:`agent.records.store.RecordStore`."""

    def __init__(
        self, buffer: ChainBuffer, key: Ed25519PrivateKey, device_id: str, clock: Clock
    ) -> None:
        self.buffer = buffer
        self.key = key
        self.device_id = device_id
        self.clock = clock

    def write(self, type: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Append the next record; it is on disk when this returns (BufferFullError if not).

        Lost ranges not yet declared are declared first, so that a hole with an
        unknown last hash is directly followed by its gap record."""
        if self.buffer.lost_ranges:
            self.declare_losses()
        return self._write(type, data)

    def _write(self, type: str, data: Mapping[str, Any]) -> dict[str, Any]:
        reading = self.clock.read()
        head_hash = self.buffer.head[1]
        record = build_record(
            self.key,
            device=self.device_id,
            seq=self.buffer.next_seq,
            prev=head_hash or ZERO_HASH,
            type=type,
            wall_ms=reading.wall_ms,
            synced=reading.synced,
            boot=reading.boot,
            mono_ns=reading.mono_ns,
            anchor=self.buffer.anchor,
            data=data,
        )
        self.buffer.append(record)
        return record

    def declare_losses(self) -> list[dict[str, Any]]:
        """Append a signed ``gap`` record for each lost range not yet declared.

        A range whose last hash is unknown goes first: its gap record must be
        the record right after the hole (docs/protocol.md).
        """
        written: list[dict[str, Any]] = []
        ranges = sorted(self.buffer.lost_ranges, key=_unknown_first)
        for lost in ranges:
            if lost.last_hash == "" and self.buffer.next_seq != lost.last_seq + 1:
                logger.error(
                    "cannot declare records %d..%d with an unknown hash at seq %d",
                    lost.first_seq,
                    lost.last_seq,
                    self.buffer.next_seq,
                )
                continue
            record = self._write(
                "gap",
                {
                    "first_seq": lost.first_seq,
                    "last_seq": lost.last_seq,
                    "last_hash": lost.last_hash,
                    "reason": lost.reason,
                },
            )
            self.buffer.mark_declared(lost)
            logger.warning(
                "declared lost records %d..%d (%s) in gap record %d",
                lost.first_seq,
                lost.last_seq,
                lost.reason,
                record["seq"],
            )
            written.append(record)
        return written


def _unknown_first(lost: LostRange) -> tuple[bool, int]:
    return lost.last_hash != "", lost.first_seq
