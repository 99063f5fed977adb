"""The crash-safe record buffer: TinyDB over append-only segment files.

One process, one thread writes it (the lock file enforces the process part).
Each segment is its own small TinyDB database (:class:`SegmentStorage`), so an
insert costs the same at 100 pending records as at 1,000,000. Only the newest
("active") segment is held open; older ones are read on demand.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tinydb import TinyDB
from tinydb.table import Document, Table

from agent.buffer.files import (
    Layout,
    Lock,
    move_to_quarantine,
    permission_denied,
    unique_path,
    write_file_durably,
)
from agent.buffer.lines import (
    NO_WALL,
    SegmentScan,
    encode_line,
    header_line,
    parse_segment,
    record_line,
    seal_line,
)
from agent.buffer.recovery import CUT, DROP, REWRITE, Plan, merge_ranges, plan_recovery
from agent.buffer.state import LostRange, State, read_state, write_state
from agent.buffer.storage import TABLE, SegmentStorage
from agent.clock import Clock, SystemClock
from agent.config import BufferConfig
from agent.durable import fsync_dir
from agent.exceptions import BufferFullError, ReceiptError, RecordBufferError
from agent.protocol.records import ZERO_HASH

__all__ = ["RecordBuffer", "scan_segments", "thin_scan"]

logger = logging.getLogger(__name__)

_HEX64 = re.compile(r"[0-9a-f]{64}")
MIN_SEGMENT_RECORDS = 64


@dataclass
class _Segment:
    first: int
    path: Path
    reserved: int
    seqs: array[int]
    sealed: bool
    size: int

    @property
    def last(self) -> int | None:
        return self.seqs[-1] if self.seqs else None


def _slim(record: dict[str, Any]) -> dict[str, Any]:
    """What recovery needs from a record it keeps."""
    slim = {k: record.get(k) for k in ("seq", "prev", "hash", "type", "wall_ms")}
    if record.get("type") == "gap":
        slim["data"] = record.get("data")
    return slim


def thin_scan(scan: SegmentScan) -> None:
    """Keep a large backlog cheap to open: every seq and wall_ms in two arrays
    (16 bytes a record), and as dicts only the records recovery reads: the
    first and last of the segment, each one after a hole in it (its ``prev``
    names the hole's last hash), and ``gap`` records."""
    records = scan.records
    seqs: array[int] = array("q")
    walls: array[int] = array("q")
    kept: list[dict[str, Any]] = []
    last = len(records) - 1
    previous: int | None = None
    for index, record in enumerate(records):
        seq = record["seq"]
        wall = record.get("wall_ms")
        seqs.append(seq)
        walls.append(wall if type(wall) is int and abs(wall) < 1 << 62 else NO_WALL)
        if (
            index in (0, last)
            or previous is None
            or seq != previous + 1
            or record.get("type") == "gap"
        ):
            kept.append(_slim(record))
        previous = seq
    scan.records, scan.seqs, scan.walls = kept, seqs, walls


def scan_segments(layout: Layout) -> list[SegmentScan]:
    """Parse every segment file; healthy segments are thinned (:func:`thin_scan`)."""
    scans = []
    for first, path in layout.segment_files():
        scan = parse_segment(path.read_bytes(), first)
        if not scan.damaged:
            thin_scan(scan)
        scans.append(scan)
    return scans


class RecordBuffer:
    """Pending records on disk until a verified portal receipt covers them."""

    def __init__(
        self, state_dir: Path, config: BufferConfig | None = None, *, clock: Clock | None = None
    ) -> None:
        self.layout = Layout.under(state_dir)
        self.config = config or BufferConfig()
        if self.config.segment_records < MIN_SEGMENT_RECORDS:
            raise RecordBufferError(
                f"buffer.segment_records must be at least {MIN_SEGMENT_RECORDS}, "
                f"not {self.config.segment_records}"
            )
        self.clock = clock or SystemClock()
        self._lock = Lock(self.layout.lock)
        self._opened = False
        self._state = State()
        self._segments: list[_Segment] = []
        self._firsts: list[int] = []
        self._active: _Segment | None = None
        self._db: TinyDB | None = None
        self._table: Table | None = None
        self._storage: SegmentStorage | None = None
        self._active_since = 0.0
        self._head: tuple[int, str] = (0, ZERO_HASH)
        self._next_seq = 1
        self._lost: list[LostRange] = []
        self._pending = 0
        self._oldest: int | None = None
        self._oldest_known = False
        self._cache: tuple[int, dict[int, dict[str, Any]]] | None = None
        self._quarantine_bytes = 0
        self._state_bytes = 0
        self._closed_bytes = 0  # segments other than the active one

    # --- life cycle -------------------------------------------------------------

    def open(self) -> RecordBuffer:
        try:
            self.layout.create()
            self._lock.acquire()
            try:
                self._recover()
            except BaseException:
                self._close_active()
                self._lock.release()
                raise
        except PermissionError as exc:
            raise permission_denied(exc, self.layout.root.parent) from exc
        self._opened = True
        return self

    def close(self) -> None:
        self._close_active()
        self._lock.release()
        self._opened = False

    def __enter__(self) -> RecordBuffer:
        return self if self._opened else self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- what callers read ------------------------------------------------------

    @property
    def head(self) -> tuple[int, str]:
        return self._head

    @property
    def last_ack(self) -> tuple[int, str]:
        return self._state.last_ack_seq, self._state.last_ack_hash

    @property
    def anchor(self) -> str:
        return self._state.anchor

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def lost_ranges(self) -> list[LostRange]:
        return list(self._lost)

    @property
    def pending_count(self) -> int:
        return self._pending

    @property
    def oldest_pending_wall_ms(self) -> int | None:
        if not self._oldest_known:
            first = self.pending(limit=1)
            self._oldest = first[0]["wall_ms"] if first else None
            self._oldest_known = True
        return self._oldest

    def usage(self) -> tuple[int, int]:
        active = self._storage.size if self._storage is not None else 0
        used = self._quarantine_bytes + self._state_bytes + self._closed_bytes + active
        return used, self.config.quota_mb * 1024 * 1024

    @property
    def quota_warning(self) -> bool:
        """True once usage reaches ``quota_warn_percent`` of the quota (the daemon
        raises the alarm; appends are refused only at the quota itself)."""
        used, quota = self.usage()
        return used * 100 >= quota * self.config.quota_warn_percent

    # --- appending --------------------------------------------------------------

    def append(self, record: dict[str, Any]) -> None:
        """Store a signed record durably (fsync'd before this returns)."""
        self._check_open()
        seq = record.get("seq")
        if seq != self._next_seq:
            raise RecordBufferError(f"record seq {seq!r} is not the next seq {self._next_seq}")
        digest = record.get("hash")
        if not isinstance(digest, str):
            raise RecordBufferError(f"record {seq} has no hash")
        active = self._active
        if active is None or self._must_roll(active, seq):
            active = self._roll(seq)
        assert self._table is not None and self._storage is not None
        self._table.insert(Document(record, doc_id=seq))
        active.seqs.append(seq)
        active.size = self._storage.size
        self._head = (seq, digest)
        self._next_seq = seq + 1
        self._pending += 1
        if self._oldest_known and self._oldest is None:
            self._oldest = record.get("wall_ms")

    def _must_roll(self, active: _Segment, seq: int) -> bool:
        if len(active.seqs) >= self.config.segment_records or seq > active.reserved:
            return True
        age = self.clock.monotonic() - self._active_since
        return bool(active.seqs) and age >= self.config.segment_age_s

    def _roll(self, first: int) -> _Segment:
        """Start a segment at ``first``: create it, reserve, then seal the old one."""
        reserved = first + self.config.segment_records - 1
        path = self.layout.segment(first)
        if path.exists():
            raise RecordBufferError(f"{path}: segment already exists")
        self._charge(512)
        # The new file (whose header holds the reservation) exists before
        # state.json names the reservation, so a crash in between never
        # looks like a lost segment.
        tmp = path.with_name(path.name + ".new")
        write_file_durably(tmp, header_line(first, reserved))
        os.rename(tmp, path)
        fsync_dir(self.layout.segments)
        if reserved > self._state.reserved:
            try:
                self._set_state(self._state.with_(reserved=reserved))
            except RecordBufferError:
                path.unlink()  # ours, empty
                fsync_dir(self.layout.segments)
                raise
        old = self._segments[-1] if self._segments else None
        if old is not None and not old.sealed:
            try:
                self._seal(old, first, reserved)
            except RecordBufferError:
                path.unlink()  # ours, empty: the old segment stays the active one
                fsync_dir(self.layout.segments)
                raise
        self._close_active()
        segment = _Segment(first, path, reserved, array("q"), False, path.stat().st_size)
        self._segments.append(segment)
        self._firsts.append(first)
        self._open_active(segment)
        return segment

    def _seal(self, old: _Segment, next_first: int, reserved: int) -> None:
        """Append the seal line: it names the next segment and its reservation."""
        last = old.last if old.last is not None else next_first - 1
        line = seal_line(last, self._head[1], next_first, reserved)
        if old is self._active and self._storage is not None:
            self._storage.append_bytes(line)
            old.size = self._storage.size
        else:
            storage = SegmentStorage(old.path, used_bytes=self._charge)
            try:
                storage.append_bytes(line)
            finally:
                storage.close()
            old.size = storage.size
        old.sealed = True

    def _open_active(self, segment: _Segment) -> None:
        self._db = TinyDB(segment.path, storage=SegmentStorage, used_bytes=self._charge)
        self._table = self._db.table(TABLE, cache_size=0)
        storage = self._db.storage
        assert isinstance(storage, SegmentStorage)
        self._storage = storage
        self._active = segment
        self._active_since = self.clock.monotonic()
        self._count_bytes()

    def _close_active(self) -> None:
        if self._db is not None:
            self._db.close()
        self._db = self._table = self._storage = None
        self._active = None
        self._count_bytes()

    def _charge(self, extra: int) -> None:
        used, quota = self.usage()
        if used + extra > quota:
            raise BufferFullError(
                f"buffer quota reached: {used} of {quota} bytes used "
                f"(buffer.quota_mb = {self.config.quota_mb}); record not stored"
            )

    # --- reading ----------------------------------------------------------------

    def pending(self, limit: int | None = None, after_seq: int = 0) -> list[dict[str, Any]]:
        """Unacknowledged records with seq above ``after_seq``, in seq order."""
        self._check_open()
        start = max(self._state.last_ack_seq, after_seq)
        out: list[dict[str, Any]] = []
        index = max(0, bisect.bisect_right(self._firsts, start) - 1)
        for segment in self._segments[index:]:
            if segment.last is None or segment.last <= start:
                continue
            docs = self._docs(segment)
            for seq in segment.seqs[bisect.bisect_right(segment.seqs, start) :]:
                out.append(dict(docs[seq]))
                if limit is not None and len(out) >= limit:
                    return out
        return out

    def get(self, seq: int) -> dict[str, Any] | None:
        """The stored record at ``seq``, or None."""
        index = bisect.bisect_right(self._firsts, seq) - 1
        if index < 0:
            return None
        segment = self._segments[index]
        pos = bisect.bisect_left(segment.seqs, seq)
        if pos == len(segment.seqs) or segment.seqs[pos] != seq:
            return None
        return dict(self._docs(segment)[seq])

    def _docs(self, segment: _Segment) -> dict[int, dict[str, Any]]:
        if segment is self._active and self._storage is not None:
            return {int(k): v for k, v in self._storage.read()[TABLE].items()}  # type: ignore[index]
        if self._cache is not None and self._cache[0] == segment.first:
            return self._cache[1]
        db = TinyDB(segment.path, storage=SegmentStorage, read_only=True)
        try:
            docs = {doc.doc_id: dict(doc) for doc in db.table(TABLE, cache_size=0).all()}
        finally:
            db.close()
        self._cache = (segment.first, docs)
        return docs

    def knows(self, seq: int, record_hash: str) -> bool:
        """docs/protocol.md, Receipts: a hash the device knows for ``seq``."""
        if not record_hash:
            return False
        if (seq, record_hash) == self.last_ack or (seq, record_hash) == self._head:
            return True
        record = self.get(seq)
        if record is not None and record.get("hash") == record_hash:
            return True
        after = self.get(seq + 1)
        return after is not None and after.get("prev") == record_hash

    # --- receipts and losses ----------------------------------------------------

    def acknowledge(self, receipt: dict[str, Any]) -> int:
        """Act on a signature-verified receipt; returns how many records stopped being pending."""
        self._check_open()
        seq, record_hash, receipt_hash = (
            receipt.get("seq"),
            receipt.get("record_hash"),
            receipt.get("hash"),
        )
        if type(seq) is not int or not isinstance(record_hash, str):
            raise ReceiptError("receipt without an integer 'seq' and a 'record_hash'")
        if not isinstance(receipt_hash, str) or not _HEX64.fullmatch(receipt_hash):
            raise ReceiptError("receipt without a valid 'hash'")
        if seq < self._state.last_ack_seq:
            raise ReceiptError(
                f"receipt for seq {seq} is below the last acknowledged seq "
                f"{self._state.last_ack_seq}; nothing deleted"
            )
        if not self.knows(seq, record_hash):
            raise ReceiptError(
                f"receipt for seq {seq} names hash {record_hash[:16]}..., which this device "
                "does not know for that seq; nothing deleted"
            )
        before = self._pending
        lost = tuple(r for r in self._state.lost if r.last_seq > seq)
        self._set_state(
            self._state.with_(
                last_ack_seq=seq, last_ack_hash=record_hash, anchor=receipt_hash, lost=lost
            )
        )
        self._lost = [r for r in self._lost if r.last_seq > seq]
        self._delete_covered()
        self._recount()
        return before - self._pending

    def _delete_covered(self) -> None:
        if self.config.retain_acknowledged:
            return
        acked = self._state.last_ack_seq
        # The newest sealed segment stays: its seal line witnesses the active
        # segment's reservation should both state.json and the active file be lost.
        sealed = [s for s in self._segments if s.sealed]
        witness = sealed[-1] if sealed else None
        doomed = [
            s
            for s in self._segments
            if s is not self._active
            and s is not witness
            and (s.last if s.last is not None else s.first) <= acked
        ]
        if not doomed:
            return
        for segment in doomed:
            segment.path.unlink()
            logger.info("segment %s acknowledged up to %s: deleted", segment.path.name, acked)
        fsync_dir(self.layout.segments)
        self._segments = [s for s in self._segments if s not in doomed]
        self._firsts = [s.first for s in self._segments]
        self._cache = None

    def quarantine_record(self, seq: int, reason: str) -> LostRange:
        """Move a pending record the portal refused into quarantine/ (as evidence).

        Returns the lost range to declare with a gap record."""
        self._check_open()
        if seq <= self._state.last_ack_seq:
            raise RecordBufferError(f"record {seq} is already acknowledged")
        record = self.get(seq)
        if record is None:
            raise RecordBufferError(f"record {seq} is not in the buffer")
        index = bisect.bisect_right(self._firsts, seq) - 1
        segment = self._segments[index]
        evidence = unique_path(self.layout.quarantine / f"record-{seq:012d}.refused")
        line = encode_line({"t": "refused", "reason": reason, "doc": record})
        write_file_durably(evidence, line)
        fsync_dir(self.layout.quarantine)
        self._quarantine_bytes += len(line)
        after = self.get(seq + 1)
        if after is not None:
            last_hash = after["prev"]
        else:
            own = record.get("hash")
            last_hash = own if isinstance(own, str) and _HEX64.fullmatch(own) else ""
        lost = LostRange(seq, seq, last_hash, reason)
        merged = merge_ranges([*self._state.lost, lost])
        self._set_state(self._state.with_(lost=tuple(merged)))
        self._rewrite_without(segment, seq)
        if self._head[0] == seq:
            self._head = (seq, last_hash)
        self._lost = merge_ranges([*self._lost, lost])
        self._recount()
        return next(r for r in self._lost if r.first_seq <= seq <= r.last_seq)

    def _rewrite_without(self, segment: _Segment, seq: int) -> None:
        docs = self._docs(segment)
        was_active = segment is self._active
        parts = [header_line(segment.first, segment.reserved)]
        parts += [record_line(s, docs[s]) for s in segment.seqs if s != seq]
        if segment.sealed:
            scan = parse_segment(segment.path.read_bytes(), segment.first)
            if scan.seal is not None:
                parts.append(encode_line(scan.seal))
        tmp = segment.path.with_name(segment.path.name + ".clean")
        write_file_durably(tmp, b"".join(parts))
        if was_active:
            self._close_active()
        os.replace(tmp, segment.path)
        fsync_dir(self.layout.segments)
        segment.seqs = array("q", [s for s in segment.seqs if s != seq])
        segment.size = segment.path.stat().st_size
        self._cache = None
        if was_active:
            self._open_active(segment)

    def mark_declared(self, lost: LostRange) -> None:
        """A signed gap record for ``lost`` has been appended."""
        self._check_open()

        def covered(r: LostRange) -> bool:
            return lost.first_seq <= r.first_seq and r.last_seq <= lost.last_seq

        self._lost = [r for r in self._lost if not covered(r)]
        remaining = tuple(r for r in self._state.lost if not covered(r))
        if remaining != self._state.lost:
            self._set_state(self._state.with_(lost=remaining))

    def skip_to(self, seq: int, reason: str) -> LostRange | None:
        """The portal already holds records up to ``seq`` that this buffer lost:
        never reuse those seqs; returns the range to declare (last hash unknown)."""
        self._check_open()
        if seq < self._next_seq:
            return None
        lost = LostRange(self._next_seq, seq, "", reason)
        self._set_state(
            self._state.with_(
                reserved=max(self._state.reserved, seq), lost=(*self._state.lost, lost)
            )
        )
        self._lost.append(lost)
        self._next_seq = seq + 1
        self._head = (seq, "")
        if self._active is not None:
            self._close_active()  # the next append starts a segment at seq + 1
        return lost

    # --- internals --------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._opened:
            raise RecordBufferError(f"{self.layout.root}: buffer is not open")

    def _set_state(self, state: State) -> None:
        self._state_bytes = write_state(self.layout.state, state)
        self._state = state

    def _count_bytes(self) -> None:
        self._closed_bytes = sum(s.size for s in self._segments if s is not self._active)

    def _recount(self) -> None:
        acked = self._state.last_ack_seq
        self._pending = sum(
            len(s.seqs) - bisect.bisect_right(s.seqs, acked) for s in self._segments
        )
        self._count_bytes()
        self._oldest_known = False

    def _recover(self) -> None:
        layout = self.layout
        for leftover in layout.segments.glob("seg-*.log.new"):
            leftover.unlink()  # a segment being created: header only, never used
        for clean in layout.segments.glob("seg-*.log.clean"):
            original = clean.with_name(clean.name[: -len(".clean")])
            if original.exists():
                clean.unlink()  # the rewrite did not finish; the original is intact
            else:
                os.rename(clean, original)  # the original already went to quarantine/
        state_tmp = layout.state.with_name(layout.state.name + ".tmp")
        if state_tmp.exists():
            state_tmp.unlink()
        state, problem = read_state(layout.state)
        tag = str(time.time_ns() // 1_000_000)
        if state is None and problem != "missing":
            logger.error("%s: %s; moved to quarantine/", layout.state, problem)
            move_to_quarantine(layout.state, layout.quarantine, tag)
        scans = scan_segments(layout)
        plan = plan_recovery(scans, state, problem, self.config.segment_records)
        for note in plan.notes:
            logger.warning("buffer recovery: %s", note)
        self._apply(plan, tag)
        if plan.state != state:
            write_state(layout.state, plan.state)
        self._state = plan.state
        self._state_bytes = layout.state.stat().st_size if layout.state.exists() else 0
        self._next_seq = plan.next_seq
        self._head = plan.head
        self._lost = list(plan.lost)
        self._index(plan)
        self._finish_quarantines()
        self._recount()
        self._quarantine_bytes = sum(
            p.stat().st_size for p in layout.quarantine.iterdir() if p.is_file()
        )
        for lost in self._lost:
            logger.error(
                "buffer: records %d..%d lost (%s); a gap record must declare them",
                lost.first_seq,
                lost.last_seq,
                lost.reason,
            )

    def _apply(self, plan: Plan, tag: str) -> None:
        layout = self.layout
        for action in plan.actions:
            scan = action.scan
            path = layout.segment(scan.first)
            if action.kind == CUT:
                data = path.read_bytes()
                evidence = unique_path(layout.quarantine / f"{path.name}.tail-{tag}")
                write_file_durably(evidence, data[scan.good_end :])
                fsync_dir(layout.quarantine)
                with open(path, "r+b") as handle:
                    handle.truncate(scan.good_end)
                    os.fsync(handle.fileno())
                logger.warning(
                    "%s: cut %d bytes of torn tail (kept as %s)",
                    path,
                    len(data) - scan.good_end,
                    evidence.name,
                )
            elif action.kind == REWRITE:
                parts = [header_line(scan.first, action.reserved)]
                parts += [record_line(r["seq"], r) for r in scan.records]
                if scan.seal is not None:
                    parts.append(encode_line(scan.seal))
                clean = path.with_name(path.name + ".clean")
                write_file_durably(clean, b"".join(parts))
                move_to_quarantine(path, layout.quarantine, tag)
                os.replace(clean, path)
                fsync_dir(layout.segments)
                thin_scan(scan)
            elif action.kind == DROP:
                move_to_quarantine(path, layout.quarantine, tag)

    def _finish_quarantines(self) -> None:
        """A crash inside quarantine_record() can leave a record that state.json
        already lists as lost: its evidence is written, so take it out now."""
        for lost in self._state.lost:
            for segment in list(self._segments):
                low = bisect.bisect_left(segment.seqs, lost.first_seq)
                high = bisect.bisect_right(segment.seqs, lost.last_seq)
                for seq in list(segment.seqs[low:high]):
                    logger.warning("record %d was being quarantined: finishing", seq)
                    self._rewrite_without(segment, seq)

    def _index(self, plan: Plan) -> None:
        self._segments = []
        for action in plan.actions:
            if action.kind == DROP:
                continue
            scan = action.scan
            path = self.layout.segment(scan.first)
            seqs = array("q", scan.all_seqs())
            sealed = scan.seal is not None
            self._segments.append(
                _Segment(scan.first, path, action.reserved, seqs, sealed, path.stat().st_size)
            )
        self._firsts = [s.first for s in self._segments]
        if plan.active_first is not None:
            segment = self._segments[-1]
            assert segment.first == plan.active_first
            self._open_active(segment)
