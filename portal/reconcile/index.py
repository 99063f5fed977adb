"""One center's records in trusted time, sorted per device, for the facts the rules read.

Built once per center: each device log is placed in trusted time
(:func:`~portal.reconcile.trusted_time.place`) and reduced to badge reads, door
timelines per (device, sensor), the door lists of its boot records, heartbeat
times, the sorted times of all records, and the spans of its declared holes.
Every query below is then a binary search, so a center costs its records plus
its lessons, never their product. Plain data, no I/O.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import compress, pairwise, repeat
from operator import eq
from typing import NamedTuple

from portal.reconcile.clones import address_signs, log_signs
from portal.reconcile.model import DeviceLog, IntegrityEvent, ReconcileSettings
from portal.reconcile.trusted_time import place, stale_anchors
from portal.reconcile.trusted_time import proven as prove


@dataclass(slots=True)
class Read:
    """A badge record placed in time, with the reasons that do not depend on a lesson."""

    device_id: str
    seq: int
    reader: str
    driver: str
    uid: str
    time_ms: int
    wall_ms: int
    trusted: bool  # its time does not provably lie outside its receipt bounds
    reasons: tuple[str, ...] = ()  # set by the engine, in the order of rules.REASONS
    proven: bool = False  # both receipt bounds within proof_bracket_ms of its time
    stale_anchor: bool = False  # its anchor is older than a receipt the device had


class DoorEvent(NamedTuple):
    device_id: str
    sensor: str
    seq: int
    state: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class Coverage:
    """What the center's devices sent during one lesson window (the heartbeat evidence)."""

    window_start_ms: int
    window_end_ms: int
    records: int
    heartbeats: int
    silences: tuple[tuple[int, int], ...]  # stretches longer than the offline threshold

    @property
    def offline(self) -> bool:
        return bool(self.silences)


@dataclass(slots=True)
class _Timeline:
    times: list[int] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)


class CenterIndex:
    """A center's records reduced to sorted timelines, and the queries the engine asks."""

    def __init__(
        self,
        logs: Iterable[DeviceLog],
        events: Iterable[IntegrityEvent],
        settings: ReconcileSettings,
    ) -> None:
        self.settings = settings
        times: list[int] = []
        self.heartbeats: list[int] = []
        self.reads: list[Read] = []
        self.doors: dict[tuple[str, str], _Timeline] = {}
        self.sensors: dict[str, list[str]] = defaultdict(list)  # device -> its door sensors
        self.boot_doors: dict[str, tuple[list[int], list[tuple[str, ...]]]] = {}
        self.holes: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.clone_spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.devices: list[str] = []  # the devices with a log, in the loader's order
        by_device = defaultdict(list)
        for ev in events:
            by_device[ev.device_id].append(ev)
        for log in logs:
            self._take(log, times, by_device.get(log.device_id, []))
        times.sort()
        self.heartbeats.sort()
        self.times = times
        # Where consecutive records are further apart than the offline threshold, found
        # once per center so that each lesson's coverage is two binary searches.
        limit = settings.offline_ms
        self.silent_after = [k for k, (a, b) in enumerate(pairwise(times)) if b - a > limit]
        for tl in self.doors.values():
            order = sorted(range(len(tl.times)), key=tl.times.__getitem__)
            tl.times = [tl.times[i] for i in order]
            tl.states = [tl.states[i] for i in order]
            tl.seqs = [tl.seqs[i] for i in order]
        self.reads.sort(key=lambda r: r.time_ms)
        self.read_times = [r.time_ms for r in self.reads]

    def _take(self, log: DeviceLog, times: list[int], events: list[IntegrityEvent]) -> None:
        s = self.settings
        where = place(log, s.time_tolerance_ms)
        placed, trusted = where
        badges = list(compress(range(len(log)), map(eq, log.type, repeat("badge"))))
        proven = dict(zip(badges, prove(log, where, s.proof_bracket_ms, badges), strict=True))
        stale = dict(
            zip(badges, stale_anchors(log, placed, s.time_tolerance_ms, badges), strict=True)
        )
        times.extend(placed)
        dev = log.device_id
        clones = log_signs(log, placed)
        clones += address_signs(log.uploads, s.clone_switches, s.clone_window_ms)
        if clones:
            self.clone_spans[dev].extend(clones)
        if dev not in self.devices:
            self.devices.append(dev)
        types = log.type
        self.heartbeats.extend([p for p, t in zip(placed, types, strict=True) if t == "heartbeat"])
        boot_seqs: list[int] = []
        boot_doors: list[tuple[str, ...]] = []
        for i in [i for i, d in enumerate(log.data) if d is not None]:
            data = log.data[i]
            assert data is not None
            kind = types[i]
            if kind == "badge":
                self.reads.append(
                    Read(
                        dev,
                        log.seq[i],
                        str(data.get("reader", "")),
                        str(data.get("driver", "")),
                        str(data.get("uid", "")).upper(),
                        placed[i],
                        log.wall_ms[i],
                        trusted[i],
                        proven=proven[i],
                        stale_anchor=stale[i],
                    )
                )
            elif kind == "door":
                sensor = str(data.get("sensor", ""))
                tl = self.doors.get((dev, sensor))
                if tl is None:
                    tl = self.doors[(dev, sensor)] = _Timeline()
                    self.sensors[dev].append(sensor)
                tl.times.append(placed[i])
                tl.states.append(str(data.get("state", "")))
                tl.seqs.append(log.seq[i])
            elif kind == "boot":
                doors = data.get("doors") or ()
                boot_seqs.append(log.seq[i])
                boot_doors.append(tuple(str(d) for d in doors))
        self.boot_doors[dev] = (boot_seqs, boot_doors)
        for ev in events:
            self.holes[dev].append(_event_span(ev, log, placed))

    def reader_runs(self, gap_ms: int) -> Iterator[list[int]]:
        """Runs of reads at one reader, each less than ``gap_ms`` after the one before.

        Each run is a list of positions in :attr:`reads` (which is in time order).
        """
        by_reader: dict[tuple[str, str], list[int]] = defaultdict(list)
        for k, read in enumerate(self.reads):
            by_reader[(read.device_id, read.reader)].append(k)
        reads = self.reads
        for positions in by_reader.values():
            start = 0
            for k in range(1, len(positions) + 1):
                if (
                    k < len(positions)
                    and reads[positions[k]].time_ms - reads[positions[k - 1]].time_ms < gap_ms
                ):
                    continue
                yield positions[start:k]
                start = k

    def doors_listed(self, read: Read) -> tuple[str, ...]:
        """The door sensors named by the device's last boot record before the read."""
        seqs, lists = self.boot_doors.get(read.device_id, ([], []))
        k = bisect_right(seqs, read.seq) - 1
        return lists[k] if k >= 0 else ()

    def open_within(self, device: str, sensor: str, lo: int, hi: int) -> bool:
        """Whether the door was open at any moment from ``lo`` to ``hi``.

        Open before ``lo`` and not closed until after it counts (a door held open).
        """
        tl = self.doors.get((device, sensor))
        if tl is None:
            return False
        k = bisect_right(tl.times, lo) - 1
        if k >= 0 and tl.states[k] == "open":
            return True
        end = bisect_right(tl.times, hi)
        return any(tl.states[j] == "open" for j in range(max(k + 1, 0), end))

    def doors_near(self, read: Read) -> list[DoorEvent]:
        """The device's door events within the door window of the read, and the one before."""
        w = self.settings.door_window_ms
        out: list[DoorEvent] = []
        device = read.device_id
        for sensor in self.sensors.get(device, ()):
            tl = self.doors[(device, sensor)]
            lo = max(bisect_right(tl.times, read.time_ms - w) - 1, 0)
            hi = bisect_right(tl.times, read.time_ms + w)
            out.extend(
                DoorEvent(device, sensor, tl.seqs[j], tl.states[j], tl.times[j])
                for j in range(lo, hi)
            )
        return out

    def coverage(self, lo: int, hi: int) -> Coverage:
        """Records, heartbeats and silences longer than the offline threshold in a window."""
        times = self.times
        i, j = bisect_left(times, lo), bisect_right(times, hi)
        limit = self.settings.offline_ms
        if i == j:
            silences: tuple[tuple[int, int], ...] = ((lo, hi),) if hi - lo > limit else ()
        else:
            gaps = self.silent_after  # k: times[k + 1] - times[k] > limit
            inner = [
                (times[k], times[k + 1])
                for k in gaps[bisect_left(gaps, i) : bisect_left(gaps, j - 1)]
            ]
            head = [(lo, times[i])] if times[i] - lo > limit else []
            tail = [(times[j - 1], hi)] if hi - times[j - 1] > limit else []
            silences = (*head, *inner, *tail)
        beats = bisect_right(self.heartbeats, hi) - bisect_left(self.heartbeats, lo)
        return Coverage(lo, hi, j - i, beats, silences)

    def reads_in(self, lo: int, hi: int) -> list[Read]:
        """The center's reads from ``lo`` to ``hi`` (inclusive), in time order."""
        return self.reads[bisect_left(self.read_times, lo) : bisect_right(self.read_times, hi)]

    def broken_chains(self, lo: int, hi: int) -> set[str]:
        """Devices with a declared hole or a refused record overlapping ``lo`` to ``hi``."""
        return {
            dev for dev, spans in self.holes.items() if any(a <= hi and b >= lo for a, b in spans)
        }

    def clone_suspects(self, lo: int, hi: int) -> set[str]:
        """Devices with a sign of a second machine holding their key overlapping the window."""
        return {
            dev
            for dev, spans in self.clone_spans.items()
            if any(a <= hi and b >= lo for a, b in spans)
        }


def _event_span(ev: IntegrityEvent, log: DeviceLog, placed: list[int]) -> tuple[int, int]:
    """The time a hole covers: from the record before it to the record after it."""
    if ev.kind != "gap" or ev.first_seq is None or ev.last_seq is None:
        return ev.at_ms, ev.at_ms
    seqs = log.seq

    def time_of(seq: int, default: int) -> int:
        k = bisect_left(seqs, seq)
        return placed[k] if k < len(seqs) and seqs[k] == seq else default

    start = time_of(ev.first_seq - 1, -(2**62) if ev.first_seq <= 1 else ev.at_ms)
    end = time_of(ev.last_seq + 1, ev.at_ms)
    return min(start, end), max(start, end)
