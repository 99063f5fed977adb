"""Opening a large backlog: healthy segments are thinned, and recovery decides the same."""

from __future__ import annotations

from pathlib import Path

from agent.buffer.buffer import scan_segments
from agent.buffer.files import Layout
from agent.buffer.lines import parse_segment
from agent.buffer.recovery import plan_recovery
from agent.buffer.state import read_state
from agent.buffer.status import read_status
from tests.buffer.conftest import SMALL, Device


def _plans(state_dir: Path) -> tuple[object, object]:
    layout = Layout.under(state_dir)
    state, problem = read_state(layout.state)
    full = [parse_segment(p.read_bytes(), first) for first, p in layout.segment_files()]
    thin = scan_segments(layout)
    return (
        plan_recovery(full, state, problem, SMALL.segment_records),
        plan_recovery(thin, state, problem, SMALL.segment_records),
    )


def _summary(plan: object) -> tuple[object, ...]:
    return (plan.next_seq, plan.head, plan.lost, plan.state, plan.active_first)  # type: ignore[attr-defined]


def test_a_thinned_segment_keeps_few_records_but_every_seq(device: Device) -> None:
    written = device.write(64 * 3)
    device.close()
    scans = scan_segments(Layout.under(device.state_dir))
    for scan in scans:
        assert len(scan.records) <= 2
        assert (
            list(scan.all_seqs())
            == [r["seq"] for r in written if r["seq"] >= scan.first][: len(scan.all_seqs())]
        )
    assert [seq for scan in scans for seq in scan.all_seqs()] == [r["seq"] for r in written]


def test_recovery_from_thinned_scans_matches_full_scans_after_damage(device: Device) -> None:
    assert device.buffer is not None
    device.write(64 * 4 + 10)
    device.buffer.quarantine_record(70, "hash")  # a hole inside a segment
    device.buffer.quarantine_record(71, "hash")
    device.buffer.quarantine_record(140, "signature")
    device.close()
    files = device.segment_files()
    files[2].unlink()  # a whole older segment lost
    (device.state_dir / "buffer" / "state.json").unlink()  # and the bookkeeping
    full, thin = _plans(device.state_dir)
    assert _summary(full) == _summary(thin)
    assert [(r.first_seq, r.last_seq) for r in thin.lost] == [(70, 71), (129, 192)]  # type: ignore[attr-defined]
    status = read_status(device.state_dir, SMALL)
    buffer = device.open()
    assert status.pending_count == buffer.pending_count
    assert status.oldest_pending_wall_ms == buffer.oldest_pending_wall_ms
    assert status.head == buffer.head
