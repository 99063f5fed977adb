"""What the files on disk say, sans I/O: the plan the buffer applies when it opens.

The data files are the truth; ``state.json`` fills in what they cannot say
(last acknowledged point, anchor, reservations, undeclared losses). The plan
names, for each segment, whether it is kept, cut back to its last valid line
(a torn append), rewritten from its valid records (damage inside: the
original goes to quarantine/), or dropped (nothing readable: to quarantine/).
It also finds the lost seq ranges and the next seq, which is above every
seq the device may have used.
"""

from __future__ import annotations

import heapq
from array import array
from dataclasses import dataclass, field
from typing import Any

from agent.buffer.lines import SegmentScan
from agent.buffer.state import LostRange, State
from agent.protocol.records import ZERO_HASH

__all__ = ["Action", "Plan", "merge_ranges", "plan_recovery"]

KEEP, CUT, REWRITE, DROP = "keep", "cut", "rewrite", "drop"


@dataclass
class Action:
    scan: SegmentScan
    kind: str  # keep | cut | rewrite | drop
    reserved: int  # the reservation the (rewritten) header carries


@dataclass
class Plan:
    actions: list[Action]
    state: State  # with reserved raised and lost set to what still needs declaring
    state_problem: str  # "" when state.json was read fine
    next_seq: int
    head: tuple[int, str]
    lost: list[LostRange]
    active_first: int | None  # the segment that takes the next append, if any
    notes: list[str] = field(default_factory=list)  # what a technician should read in the log


def merge_ranges(ranges: list[LostRange]) -> list[LostRange]:
    """Sorted, with overlapping or adjacent ranges joined (a verifier bridges one hole
    per gap record, so two touching holes must be declared as one)."""
    out: list[LostRange] = []
    for r in sorted(ranges, key=lambda r: (r.first_seq, r.last_seq)):
        if out and r.first_seq <= out[-1].last_seq + 1:
            last = out[-1]
            if r.last_seq > last.last_seq:
                out[-1] = LostRange(last.first_seq, r.last_seq, r.last_hash, last.reason)
        else:
            out.append(r)
    return out


def _declared(gaps: list[tuple[int, int]], r: LostRange) -> bool:
    return any(first <= r.first_seq and r.last_seq <= last for first, last in gaps)


def plan_recovery(
    scans: list[SegmentScan], state: State | None, state_problem: str, segment_records: int
) -> Plan:
    scans = sorted(scans, key=lambda s: s.first)
    known = state or State()
    notes: list[str] = []
    if state is None and scans:
        notes.append(f"state.json {state_problem}: rebuilt from the segments")

    actions: list[Action] = []
    for scan in scans:
        reserved = scan.reserved
        if reserved is None:
            reserved = max(known.reserved, scan.first + segment_records - 1)
            if scan.records:
                reserved = max(reserved, scan.records[-1]["seq"])
        if scan.damaged:
            kind = REWRITE if scan.records else DROP
            notes.append(f"segment {scan.first}: {scan.problem}; original moved to quarantine/")
        elif scan.torn_tail:
            kind = CUT
        else:
            kind = KEEP
        actions.append(Action(scan, kind, reserved))

    # The readable records recovery reads, by seq (a seq seen twice keeps its
    # first copy); a thinned scan holds the ones after a hole, the first, the
    # last and gap records, which is all that is looked up below.
    by_seq: dict[int, dict[str, Any]] = {}
    for scan in scans:
        for record in scan.records:
            by_seq.setdefault(record["seq"], record)
    seqs = _unique_seqs(scans)
    max_valid = seqs[-1] if seqs else 0
    # Without bookkeeping, what is older than the oldest readable record is
    # taken as acknowledged (segments are deleted only once covered).
    base = known.last_ack_seq if state is not None else (seqs[0] - 1 if seqs else 0)

    reserved_all = max(
        [known.reserved, max_valid, known.last_ack_seq]
        + [a.reserved for a in actions]
        + [s.seal["reserved"] for s in scans if s.seal is not None]
    )

    # Holes between readable records: their last_hash is the next record's prev.
    lost: list[LostRange] = []
    expected = base + 1
    for seq in seqs:
        if seq <= base:
            continue
        if seq > expected:
            prev = by_seq[seq]["prev"]
            lost.append(LostRange(expected, seq - 1, prev, "segment unreadable"))
        expected = seq + 1

    # The newest records lost: a sealed newest segment (its successor is
    # gone), a newest segment whose header or tail cannot be trusted, or no
    # segment at all although seqs were reserved.
    tail: LostRange | None = None
    if scans:
        newest = actions[-1]
        witness = 0
        if newest.scan.seal is not None:
            witness = max(newest.scan.seal["reserved"], reserved_all)
            notes.append(f"segment after {newest.scan.first} is missing")
        elif newest.scan.damaged and (newest.scan.header is None or newest.scan.torn_tail):
            witness = max(newest.reserved, known.reserved)
        if witness > max(max_valid, base):
            tail = LostRange(max(max_valid, base) + 1, witness, "", "newest segment lost")
    elif state is not None and known.reserved > known.last_ack_seq:
        tail = LostRange(known.last_ack_seq + 1, known.reserved, "", "newest segment lost")
        notes.append("no segment file left although records were reserved")
    if tail is not None:
        lost.append(tail)

    # Ranges already declared by a gap record still in the buffer need no new one.
    gaps = [
        (r["data"]["first_seq"], r["data"]["last_seq"])
        for r in by_seq.values()
        if r.get("type") == "gap"
        and isinstance(r.get("data"), dict)
        and type(r["data"].get("first_seq")) is int
        and type(r["data"].get("last_seq")) is int
    ]
    undeclared = [r for r in merge_ranges([*known.lost, *lost]) if not _declared(gaps, r)]
    undeclared = [r for r in undeclared if r.last_seq > base]

    top = max([max_valid, base, *(r.last_seq for r in known.lost)])
    if tail is not None:
        top = max(top, tail.last_seq)
    next_seq = top + 1
    head = _head(by_seq, max_valid, known, tail, base)

    active_first: int | None = None
    if tail is None and actions:
        newest = actions[-1]
        if newest.kind != DROP and newest.scan.seal is None:
            active_first = newest.scan.first

    reserved_all = max(reserved_all, next_seq - 1)
    new_state = known.with_(reserved=reserved_all, lost=tuple(undeclared))
    if state is None and seqs:
        # The oldest readable record's predecessor is the best acknowledged
        # point that can be named.
        new_state = new_state.with_(last_ack_seq=seqs[0] - 1, last_ack_hash=by_seq[seqs[0]]["prev"])
    return Plan(actions, new_state, state_problem, next_seq, head, undeclared, active_first, notes)


def _unique_seqs(scans: list[SegmentScan]) -> array[int]:
    """Every readable seq once, ascending (scans are sorted, each ascending)."""
    out: array[int] = array("q")
    for seq in heapq.merge(*(scan.all_seqs() for scan in scans)):
        if not out or seq != out[-1]:
            out.append(seq)
    return out


def _head(
    by_seq: dict[int, dict[str, Any]],
    max_valid: int,
    known: State,
    tail: LostRange | None,
    base: int,
) -> tuple[int, str]:
    if tail is not None:
        return tail.last_seq, ""
    candidates: list[tuple[int, str]] = []
    if max_valid:
        candidates.append((max_valid, by_seq[max_valid]["hash"]))
    candidates += [(r.last_seq, r.last_hash) for r in known.lost]
    if known.last_ack_seq:
        candidates.append((known.last_ack_seq, known.last_ack_hash))
    if not candidates:
        return 0, ZERO_HASH
    return max(candidates, key=lambda c: c[0])
