"""The buffer as ``qatysu status`` sees it while the daemon is not running: read-only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.buffer.buffer import scan_segments
from agent.buffer.files import Layout, Lock
from agent.buffer.recovery import KEEP, plan_recovery
from agent.buffer.state import LostRange, read_state
from agent.config import BufferConfig

__all__ = ["BufferStatus", "read_status"]


@dataclass(frozen=True)
class BufferStatus:
    pending_count: int
    oldest_pending_wall_ms: int | None
    head: tuple[int, str]
    last_ack: tuple[int, str]
    anchor: str
    next_seq: int
    lost_ranges: tuple[LostRange, ...]
    segments: int
    used_bytes: int
    needs_recovery: tuple[str, ...]  # what the next open would repair or quarantine


def read_status(state_dir: Path, config: BufferConfig | None = None) -> BufferStatus:
    """Read the buffer without changing a byte; raises BufferLockedError while a writer runs."""
    config = config or BufferConfig()
    layout = Layout.under(state_dir)
    if not layout.lock.exists():
        return BufferStatus(0, None, (0, "0" * 64), (0, ""), "", 1, (), 0, 0, ())
    lock = Lock(layout.lock, shared=True)
    lock.acquire()
    try:
        state, problem = read_state(layout.state)
        scans = scan_segments(layout)
        plan = plan_recovery(scans, state, problem, config.segment_records)
        used = sum(p.stat().st_size for p in layout.root.rglob("*") if p.is_file())
    finally:
        lock.release()
    acked = plan.state.last_ack_seq
    count, oldest = 0, None
    oldest_seq: int | None = None
    for scan in scans:
        for seq, wall in scan.seq_walls():
            if seq > acked:
                count += 1
                if oldest_seq is None or seq < oldest_seq:
                    oldest_seq, oldest = seq, wall
    repairs = tuple(
        f"{layout.segment(a.scan.first).name}: {a.kind}" for a in plan.actions if a.kind != KEEP
    )
    if problem not in ("", "missing"):
        repairs += (f"state.json: {problem}",)
    return BufferStatus(
        pending_count=count,
        oldest_pending_wall_ms=oldest,
        head=plan.head,
        last_ack=(acked, plan.state.last_ack_hash),
        anchor=plan.state.anchor,
        next_seq=plan.next_seq,
        lost_ranges=tuple(plan.lost),
        segments=len(scans),
        used_bytes=used,
        needs_recovery=repairs,
    )
