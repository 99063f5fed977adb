"""A record the portal refused: kept as evidence, declared by a signed gap record."""

from __future__ import annotations

import pytest

from agent.exceptions import RecordBufferError
from tests.buffer.conftest import Device


def test_refused_record_is_moved_to_quarantine_and_declared(device: Device) -> None:
    written = device.write(100)
    buffer = device.buffer
    assert buffer is not None and device.writer is not None
    lost = buffer.quarantine_record(40, "signature")
    assert (lost.first_seq, lost.last_seq, lost.reason) == (40, 40, "signature")
    assert lost.last_hash == written[40]["prev"]
    assert 40 not in [r["seq"] for r in buffer.pending()]
    assert buffer.pending_count == 99
    [evidence] = [p for p in device.quarantine.iterdir() if p.name.startswith("record-")]
    assert written[39]["hash"].encode() in evidence.read_bytes()
    # Not yet declared: a restart still knows (state.json holds it).
    buffer = device.reopen()
    assert buffer.lost_ranges == [lost]
    [gap] = device.writer.declare_losses() if device.writer else []
    assert gap["seq"] == 101 and gap["data"]["first_seq"] == 40
    buffer = device.reopen()
    assert buffer.lost_ranges == []
    device.verify(buffer.pending())


def test_refused_head_record_keeps_its_seq_used(device: Device) -> None:
    written = device.write(10)
    buffer = device.buffer
    assert buffer is not None
    lost = buffer.quarantine_record(10, "hash")
    assert lost.last_hash == written[9]["hash"]
    buffer = device.reopen()
    assert buffer.next_seq == 11  # seq 10 is never reused
    assert device.writer is not None
    [gap] = device.writer.declare_losses()
    assert gap["seq"] == 11 and gap["prev"] == written[9]["hash"]
    device.verify(buffer.pending())


def test_adjacent_refusals_are_declared_as_one_hole(device: Device) -> None:
    written = device.write(70)  # 65..70 in the active segment
    buffer = device.buffer
    assert buffer is not None and device.writer is not None
    buffer.quarantine_record(64, "encoding")
    merged = buffer.quarantine_record(65, "encoding")
    assert (merged.first_seq, merged.last_seq) == (64, 65)
    assert merged.last_hash == written[65]["prev"]
    assert buffer.lost_ranges == [merged]
    device.writer.declare_losses()
    device.write(1)
    device.verify(device.reopen().pending())


def test_only_pending_records_can_be_quarantined(device: Device) -> None:
    written = device.write(5)
    buffer = device.buffer
    assert buffer is not None
    buffer.acknowledge(device.receipt(3, written[2]["hash"]))
    with pytest.raises(RecordBufferError, match="already acknowledged"):
        buffer.quarantine_record(2, "hash")
    with pytest.raises(RecordBufferError, match="not in the buffer"):
        buffer.quarantine_record(9, "hash")


def test_skip_to_never_reuses_what_the_portal_holds(device: Device) -> None:
    device.write(5)
    buffer = device.buffer
    assert buffer is not None and device.writer is not None
    lost = buffer.skip_to(20, "portal holds records this device lost")
    assert lost is not None and (lost.first_seq, lost.last_seq, lost.last_hash) == (6, 20, "")
    [gap] = device.writer.declare_losses()
    assert gap["seq"] == 21 and gap["prev"] == "0" * 64
    device.verify(device.reopen().pending())


def test_a_quarantine_interrupted_by_a_crash_is_finished(device: Device) -> None:
    from agent.buffer.state import LostRange, read_state, write_state

    written = device.write(10)
    device.close()
    # The crash came after state.json listed record 5 as lost, before the
    # segment was rewritten without it.
    path = device.state_dir / "buffer" / "state.json"
    state, _ = read_state(path)
    assert state is not None
    lost = LostRange(5, 5, written[5]["prev"], "signature")
    write_state(path, state.with_(lost=(lost,)))
    buffer = device.open()
    assert [r["seq"] for r in buffer.pending()] == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert buffer.lost_ranges == [lost]


def test_write_declares_pending_losses_first(device: Device) -> None:
    device.write(5)
    assert device.buffer is not None
    device.buffer.skip_to(9, "portal cursor ahead")
    [record] = device.write(1)
    gap, badge = device.buffer.pending()[-2:]
    assert (gap["type"], gap["seq"], badge["seq"]) == ("gap", 10, 11)
    assert badge == record
    device.verify(device.buffer.pending())
