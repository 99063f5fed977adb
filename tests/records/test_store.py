"""The record store: alarms for refused appends and the quota, listeners, close."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.buffer.buffer import RecordBuffer
from agent.clock import ManualClock
from agent.config import BufferConfig
from agent.exceptions import BufferFullError, RecordBufferError
from agent.records.store import RecordStore


def _writer(tmp_path: Path, config: BufferConfig) -> RecordStore:
    clock = ManualClock()
    buffer = RecordBuffer(tmp_path / "state", config, clock=clock).open()
    return RecordStore(buffer, Ed25519PrivateKey.generate(), "dev-1", clock)


def test_refused_appends_are_reported_by_an_alarm_once_the_disk_takes_records(
    tmp_path: Path,
) -> None:
    writer = _writer(tmp_path, BufferConfig(segment_records=64, quota_mb=1, quota_warn_percent=100))
    seen: list[dict[str, object]] = []
    writer.add_listener(seen.append)
    big = {"kind": "test", "detail": "x" * 300_000}
    with pytest.raises(BufferFullError):
        for _ in range(10):
            writer.write("alarm", big)
    stored = writer.head[0]
    with pytest.raises(BufferFullError):
        writer.write("alarm", big)
    record = writer.write(
        "badge", {"reader": "r", "driver": "simulated", "uid": "01", "uid_len": 1}
    )
    alarm = writer.get(record["seq"] + 1)
    assert record["seq"] == stored + 1
    assert alarm is not None and alarm["type"] == "alarm"
    assert alarm["data"]["kind"] == "disk_full"
    assert alarm["data"]["detail"].startswith("2 event(s) could not be stored")
    assert [r["seq"] for r in seen][-2:] == [record["seq"], alarm["seq"]]
    writer.close()
    with pytest.raises(RecordBufferError):
        writer.write("badge", {})


def test_crossing_the_quota_warning_writes_one_alarm(tmp_path: Path) -> None:
    writer = _writer(tmp_path, BufferConfig(segment_records=64, quota_mb=1, quota_warn_percent=5))
    for _ in range(40):
        writer.write("heartbeat", {"pending": 0, "readers": {}, "uptime_s": 0, "pad": "y" * 2000})
    kinds = [r["data"]["kind"] for r in writer.pending() if r["type"] == "alarm"]
    assert kinds == ["quota_warning"]
    writer.close()
