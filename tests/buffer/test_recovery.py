"""Damaged files: each is cut, rewritten or quarantined, and no other record is lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.protocol import ZERO_HASH
from tests.buffer.conftest import Device


def _pending_seqs(device: Device) -> list[int]:
    assert device.buffer is not None
    return [r["seq"] for r in device.buffer.pending()]


def _declare_and_verify(device: Device) -> list[dict[str, Any]]:
    """Write the gap records, check the whole pending chain, and that a restart
    does not ask for the same declaration again."""
    assert device.writer is not None and device.buffer is not None
    gaps = device.writer.declare_losses()
    assert device.buffer.lost_ranges == []
    device.verify(device.buffer.pending())
    buffer = device.reopen()
    assert buffer.lost_ranges == []
    device.verify(buffer.pending())
    return gaps


def test_torn_tail_of_the_newest_segment_is_cut(device: Device) -> None:
    written = device.write(100)
    device.close()
    newest = device.segment_files()[-1]
    with open(newest, "ab") as handle:
        handle.write(b'3f2a1b0c {"t":"r","id":101,"doc":{"seq":10')  # a torn append
    buffer = device.open()
    assert buffer.pending() == written
    assert buffer.lost_ranges == []
    assert buffer.next_seq == 101
    assert [p.name for p in device.quarantine.iterdir()] == [
        f"{newest.name}.tail-{p.name.rsplit('-', 1)[1]}" for p in device.quarantine.iterdir()
    ]
    device.write(1)
    device.verify(device.reopen().pending())


def test_truncated_newest_segment_keeps_every_whole_record(device: Device) -> None:
    written = device.write(100)
    device.close()
    newest = device.segment_files()[-1]
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) - 40])  # cuts into record 100
    buffer = device.open()
    assert buffer.pending() == written[:99]
    assert buffer.next_seq == 100


@pytest.mark.parametrize("damage", ["truncated", "empty", "zeros", "garbage inside"])
def test_damaged_older_segment_loses_only_its_own_records(device: Device, damage: str) -> None:
    written = device.write(200)  # segments 1, 65, 129, 193
    device.close()
    victim = device.segment_files()[1]  # records 65..128
    data = victim.read_bytes()
    if damage == "truncated":
        victim.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        victim.write_bytes(b"")
    elif damage == "zeros":
        victim.write_bytes(b"\0" * len(data))
    else:
        lines = data.split(b"\n")
        lines[10] = lines[10][:50] + b"XXXX" + lines[10][54:]  # record 74's line
        victim.write_bytes(b"\n".join(lines))
    buffer = device.open()
    [lost] = buffer.lost_ranges
    survivors = _pending_seqs(device)
    lost_seqs = set(range(lost.first_seq, lost.last_seq + 1))
    assert survivors == [s for s in range(1, 201) if s not in lost_seqs]
    assert lost.last_hash == written[lost.last_seq - 1]["hash"]
    assert 65 <= lost.first_seq <= lost.last_seq <= 128
    if damage == "garbage inside":
        assert lost_seqs == {74}
    if damage in ("empty", "zeros"):
        assert lost_seqs == set(range(65, 129))
    assert any(p.name.startswith(victim.name) for p in device.quarantine.iterdir())
    gaps = _declare_and_verify(device)
    assert [g["data"]["first_seq"] for g in gaps] == [lost.first_seq]
    assert gaps[0]["seq"] == 201


def test_trailing_garbage_on_an_older_segment_loses_nothing(device: Device) -> None:
    written = device.write(130)
    device.close()
    older = device.segment_files()[0]
    with open(older, "ab") as handle:
        handle.write(b"\x00\xff garbage that is not a line")
    buffer = device.open()
    assert buffer.pending() == written
    assert buffer.lost_ranges == []


@pytest.mark.parametrize("damage", ["empty", "zeros"])
def test_damaged_newest_segment_declares_up_to_the_reservation(device: Device, damage: str) -> None:
    written = device.write(140)  # the newest segment 129.. holds 129..140
    device.close()
    newest = device.segment_files()[-1]
    size = newest.stat().st_size
    newest.write_bytes(b"" if damage == "empty" else b"\0" * size)
    buffer = device.open()
    assert _pending_seqs(device) == list(range(1, 129))
    [lost] = buffer.lost_ranges
    assert (lost.first_seq, lost.last_seq, lost.last_hash) == (129, 192, "")
    assert buffer.next_seq == 193  # above every seq the segment could have held
    assert buffer.head == (192, "")
    [gap] = _declare_and_verify(device)
    assert gap["seq"] == 193 and gap["prev"] == ZERO_HASH
    assert written[127]["seq"] == 128


def test_missing_bookkeeping_is_rebuilt_from_the_segments(device: Device) -> None:
    written = device.write(150)
    assert device.buffer is not None
    device.buffer.acknowledge(device.receipt(100, written[99]["hash"]))
    device.close()
    (device.state_dir / "buffer" / "state.json").unlink()
    buffer = device.open()
    assert buffer.lost_ranges == []
    assert buffer.next_seq == 151
    assert buffer.head == (150, written[-1]["hash"])
    # The acknowledged point is lost with the file: what remains is pending
    # again (the portal counts the re-sent records as duplicates).
    seqs = _pending_seqs(device)
    assert seqs == list(range(seqs[0], 151)) and seqs[0] <= 101
    device.write(1)
    device.verify(device.reopen().pending())


def test_corrupt_bookkeeping_is_quarantined(device: Device) -> None:
    written = device.write(70)
    device.close()
    state = device.state_dir / "buffer" / "state.json"
    state.write_bytes(state.read_bytes().replace(b"reserved", b"reserveD"))
    buffer = device.open()
    assert buffer.pending() == written
    assert any(p.name.startswith("state.json.") for p in device.quarantine.iterdir())


def test_bookkeeping_and_newest_segment_both_lost(device: Device) -> None:
    written = device.write(150)  # segments 1, 65, 129 (reserved up to 192)
    device.close()
    (device.state_dir / "buffer" / "state.json").unlink()
    device.segment_files()[-1].unlink()
    buffer = device.open()
    assert _pending_seqs(device) == list(range(1, 129))
    [lost] = buffer.lost_ranges
    assert lost.last_hash == ""
    assert lost.first_seq == 129
    assert buffer.next_seq > 150  # no used seq is ever reused
    assert buffer.next_seq == lost.last_seq + 1 == 193
    [gap] = _declare_and_verify(device)
    assert gap["seq"] == 193 and gap["prev"] == ZERO_HASH
    assert gap["data"] == {
        "first_seq": 129,
        "last_seq": 192,
        "last_hash": "",
        "reason": "newest segment lost",
    }
    assert written[-1]["seq"] == 150


def test_leftover_temporary_files_are_resolved(device: Device) -> None:
    written = device.write(10)
    device.close()
    segments = device.segments
    (segments / "seg-000000000011.log.new").write_bytes(b"half a hea")
    first = device.segment_files()[0]
    (segments / (first.name + ".clean")).write_bytes(b"partial rewrite")
    buffer = device.open()
    assert buffer.pending() == written
    assert sorted(p.name for p in segments.iterdir()) == [first.name]


def test_status_reads_without_changing_anything(device: Device, tmp_path: Path) -> None:
    from agent.buffer.status import read_status

    written = device.write(100)
    device.close()
    newest = device.segment_files()[-1]
    with open(newest, "ab") as handle:
        handle.write(b"torn")
    before = {p: p.read_bytes() for p in (device.state_dir / "buffer").rglob("*") if p.is_file()}
    status = read_status(device.state_dir)
    after = {p: p.read_bytes() for p in (device.state_dir / "buffer").rglob("*") if p.is_file()}
    assert before == after
    assert status.pending_count == 100
    assert status.head == (100, written[-1]["hash"])
    assert status.oldest_pending_wall_ms == written[0]["wall_ms"]
    assert status.needs_recovery == (f"{newest.name}: cut",)
    assert read_status(tmp_path / "nowhere").pending_count == 0
