"""Helpers for the buffer tests: a device key, a stand-in portal key, a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.buffer.buffer import RecordBuffer
from agent.clock import ManualClock
from agent.config import BufferConfig
from agent.protocol import build_receipt, verify_chain
from agent.records.chain import ChainWriter

DEVICE = "dev-test"
SMALL = BufferConfig(segment_records=64)


class Device:
    """A buffer plus its chain writer, reopened the way a restarted daemon would."""

    def __init__(self, state_dir: Path, config: BufferConfig = SMALL) -> None:
        self.state_dir = state_dir
        self.config = config
        self.key = Ed25519PrivateKey.generate()
        self.portal = Ed25519PrivateKey.generate()
        self.clock = ManualClock()
        self.buffer: RecordBuffer | None = None
        self.writer: ChainWriter | None = None

    def open(self) -> RecordBuffer:
        self.buffer = RecordBuffer(self.state_dir, self.config, clock=self.clock).open()
        self.writer = ChainWriter(self.buffer, self.key, DEVICE, self.clock)
        return self.buffer

    def close(self) -> None:
        if self.buffer is not None:
            self.buffer.close()
        self.buffer = self.writer = None

    def reopen(self) -> RecordBuffer:
        self.close()
        return self.open()

    def write(self, n: int, type: str = "badge") -> list[dict[str, Any]]:
        assert self.writer is not None
        out = []
        for _ in range(n):
            self.clock.advance(0.5)
            out.append(self.writer.write(type, {"reader": "door", "uid": "04A1B2C3", "uid_len": 4}))
        return out

    def receipt(self, seq: int, record_hash: str) -> dict[str, Any]:
        return build_receipt(
            self.portal, device=DEVICE, seq=seq, record_hash=record_hash, server_ms=1
        )

    def verify(self, records: list[dict[str, Any]], start: tuple[int, str] | None = None) -> None:
        report = verify_chain(records, self.key.public_key(), DEVICE, start=start)
        assert report.ok, report.failure

    @property
    def segments(self) -> Path:
        return self.state_dir / "buffer" / "segments"

    @property
    def quarantine(self) -> Path:
        return self.state_dir / "buffer" / "quarantine"

    def segment_files(self) -> list[Path]:
        return sorted(self.segments.glob("seg-*.log"))


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Device]:
    dev = Device(tmp_path / "state")
    dev.open()
    yield dev
    dev.close()
