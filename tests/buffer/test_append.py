"""Appending, reading back, rolling segments, TinyDB's storage contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from tinydb import TinyDB
from tinydb.table import Document

from agent.buffer.buffer import RecordBuffer
from agent.buffer.storage import SegmentStorage
from agent.config import BufferConfig
from agent.exceptions import RecordBufferError
from agent.protocol import ZERO_HASH
from tests.buffer.conftest import Device


def test_empty_buffer_starts_at_seq_one(device: Device) -> None:
    buffer = device.buffer
    assert buffer is not None
    assert buffer.head == (0, ZERO_HASH)
    assert buffer.next_seq == 1
    assert buffer.last_ack == (0, "")
    assert buffer.anchor == ""
    assert buffer.pending() == []
    assert buffer.pending_count == 0
    assert buffer.oldest_pending_wall_ms is None


def test_records_come_back_in_order_after_reopen(device: Device) -> None:
    written = device.write(200)
    buffer = device.reopen()
    assert buffer.pending() == written
    assert buffer.pending_count == 200
    assert buffer.head == (200, written[-1]["hash"])
    assert buffer.next_seq == 201
    assert buffer.oldest_pending_wall_ms == written[0]["wall_ms"]
    device.verify(buffer.pending())
    more = device.write(1)
    assert more[0]["prev"] == written[-1]["hash"]


def test_pending_limit_and_after_seq(device: Device) -> None:
    written = device.write(150)
    assert device.buffer is not None
    assert device.buffer.pending(limit=10) == written[:10]
    assert device.buffer.pending(limit=5, after_seq=100) == written[100:105]
    assert device.buffer.pending(after_seq=150) == []


def test_append_refuses_a_wrong_seq(device: Device) -> None:
    written = device.write(3)
    assert device.buffer is not None
    with pytest.raises(RecordBufferError, match="not the next seq 4"):
        device.buffer.append(dict(written[-1]))
    assert device.buffer.pending_count == 3


def test_segments_hold_a_bounded_number_of_records(device: Device) -> None:
    device.write(64 * 3 + 1)
    names = [p.name for p in device.segment_files()]
    assert names == [
        "seg-000000000001.log",
        "seg-000000000065.log",
        "seg-000000000129.log",
        "seg-000000000193.log",
    ]


def test_segment_rolls_by_age(device: Device) -> None:
    device.write(3)
    device.clock.advance(SMALL_AGE + 1)
    device.write(1)
    assert [p.name for p in device.segment_files()][-1] == "seg-000000000004.log"


SMALL_AGE = BufferConfig().segment_age_s


def test_segment_records_below_64_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RecordBufferError, match="at least 64"):
        RecordBuffer(tmp_path, BufferConfig(segment_records=10))


def test_each_segment_is_a_tinydb_database(device: Device) -> None:
    written = device.write(70)
    first = device.segment_files()[0]
    db = TinyDB(first, storage=SegmentStorage, read_only=True)
    try:
        docs = db.table("_default").all()
        assert [d.doc_id for d in docs] == list(range(1, 65))
        assert dict(db.table("_default").get(doc_id=7)) == written[6]
    finally:
        db.close()


def test_storage_is_append_only(device: Device) -> None:
    device.close()
    path = device.segment_files()[0] if device.segment_files() else None
    if path is None:
        device.open()
        device.write(2)
        device.close()
        path = device.segment_files()[0]
    db = TinyDB(path, storage=SegmentStorage)
    try:
        table = db.table("_default")
        table.insert(Document({"seq": 3, "x": 1}, doc_id=3))
        with pytest.raises(RecordBufferError, match="append-only"):
            table.update({"x": 2}, doc_ids=[3])
        with pytest.raises(RecordBufferError, match="append-only"):
            table.remove(doc_ids=[3])
    finally:
        db.close()
    # A second TinyDB over the same file sees the appended document once.
    db = TinyDB(path, storage=SegmentStorage, read_only=True)
    try:
        assert db.table("_default").get(doc_id=3) == {"seq": 3, "x": 1}
    finally:
        db.close()


def test_usage_counts_the_files(device: Device) -> None:
    assert device.buffer is not None
    before, quota = device.buffer.usage()
    device.write(10)
    after, _ = device.buffer.usage()
    assert quota == SMALL_QUOTA * 1024 * 1024
    assert after - before > 10 * 300
    assert (
        after
        == sum(p.stat().st_size for p in device.segment_files())
        + (device.state_dir / "buffer" / "state.json").stat().st_size
    )


SMALL_QUOTA = BufferConfig().quota_mb
