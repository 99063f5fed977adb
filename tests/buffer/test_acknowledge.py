"""Receipts: what they may delete, and what they must never delete (docs/protocol.md, Receipts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import BufferConfig
from agent.exceptions import ReceiptError
from tests.buffer.conftest import Device


def _snapshot(device: Device) -> dict[str, bytes]:
    root = device.state_dir / "buffer"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_receipt_frees_covered_records_and_sets_the_anchor(device: Device) -> None:
    written = device.write(200)
    buffer = device.buffer
    assert buffer is not None
    receipt = device.receipt(150, written[149]["hash"])
    assert buffer.acknowledge(receipt) == 150
    assert buffer.last_ack == (150, written[149]["hash"])
    assert buffer.anchor == receipt["hash"]
    assert buffer.pending() == written[150:]
    assert buffer.pending_count == 50
    assert buffer.oldest_pending_wall_ms == written[150]["wall_ms"]
    # 1..64 and 65..128 are covered and deleted; 129..192 is not fully
    # covered (and, as the newest sealed segment, would stay as the witness).
    names = [p.name for p in device.segment_files()]
    assert "seg-000000000001.log" not in names
    assert "seg-000000000065.log" not in names
    assert names[-2:] == ["seg-000000000129.log", "seg-000000000193.log"]
    # The next record carries the anchor; everything survives a restart.
    nxt = device.write(1)[0]
    assert nxt["anchor"] == receipt["hash"]
    buffer = device.reopen()
    assert buffer.last_ack == (150, written[149]["hash"])
    assert buffer.anchor == receipt["hash"]
    assert buffer.pending() == [*written[150:], nxt]


def test_retention_keeps_acknowledged_segments(tmp_path: Path) -> None:
    device = Device(tmp_path, BufferConfig(segment_records=64, retain_acknowledged=True))
    device.open()
    written = device.write(200)
    assert device.buffer is not None
    device.buffer.acknowledge(device.receipt(200, written[-1]["hash"]))
    assert len(device.segment_files()) == 4
    assert device.buffer.pending() == []
    device.close()


@pytest.mark.parametrize("case", ["unknown hash", "below last_ack", "another seq's hash"])
def test_refused_receipts_delete_nothing(device: Device, case: str) -> None:
    written = device.write(150)
    buffer = device.buffer
    assert buffer is not None
    buffer.acknowledge(device.receipt(70, written[69]["hash"]))
    before = _snapshot(device)
    state = (buffer.last_ack, buffer.anchor, buffer.pending_count)
    if case == "unknown hash":
        receipt = device.receipt(140, "ab" * 32)
        message = "does not know"
    elif case == "below last_ack":
        receipt = device.receipt(60, written[59]["hash"])
        message = "below the last acknowledged"
    else:
        receipt = device.receipt(140, written[120]["hash"])
        message = "does not know"
    with pytest.raises(ReceiptError, match=message):
        buffer.acknowledge(receipt)
    assert _snapshot(device) == before
    assert (buffer.last_ack, buffer.anchor, buffer.pending_count) == state


def test_receipt_beyond_the_head_is_refused(device: Device) -> None:
    written = device.write(5)
    assert device.buffer is not None
    with pytest.raises(ReceiptError):
        device.buffer.acknowledge(device.receipt(6, written[-1]["hash"]))


def test_knows_the_hashes_spec_lists(device: Device) -> None:
    written = device.write(100)
    buffer = device.buffer
    assert buffer is not None
    assert buffer.knows(50, written[49]["hash"])  # its record there
    assert buffer.knows(50, written[50]["prev"])  # prev of the next record
    assert buffer.knows(100, written[99]["hash"])  # its head
    assert buffer.knows(0, "0" * 64)  # prev of record 1: the empty chain
    assert not buffer.knows(50, written[48]["hash"])
    buffer.acknowledge(device.receipt(80, written[79]["hash"]))
    buffer = device.reopen()
    assert buffer.knows(80, written[79]["hash"])  # durable last_ack


def test_same_receipt_twice_frees_nothing_more(device: Device) -> None:
    written = device.write(10)
    assert device.buffer is not None
    receipt = device.receipt(5, written[4]["hash"])
    assert device.buffer.acknowledge(receipt) == 5
    assert device.buffer.acknowledge(receipt) == 0
