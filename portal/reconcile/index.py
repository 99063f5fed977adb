"""One center's records in trusted time, sorted per device, for the facts the rules read.

Built once per center: each device log is placed in trusted time
(:func:`~portal.reconcile.trusted_time.place`) and reduced to badge reads, door
timelines per (device, sensor) with a mark at each boot, what its boot records
declared (with the latest one before the loaded range), heartbeat
times, the sorted times of all records, and the spans of its declared holes.
Every query below is then a binary search, so a center costs its records plus
its lessons, never their product. Plain data, no I/O.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import compress, pairwise, repeat
from operator import eq
from typing import Any, NamedTuple

from portal.reconcile.clones import address_signs, log_signs
from portal.reconcile.model import DeviceLog, IntegrityEvent, ReconcileSettings
from portal.reconcile.trusted_time import place, stale_anchors
from portal.reconcile.trusted_time import proven as prove

# What a read's card says (Read.card_check, set by portal.reconcile.cards): "" for a
# card not registered as ntag424-sun; authentic (message checks, counter not yet
# ordered), then proven or replayed; or not_authenticated.
CARD_AUTHENTIC = "authentic"
CARD_NOT_AUTHENTICATED = "not_authenticated"
CARD_PROVEN = "proven"
CARD_REPLAYED = "replayed"


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
    card: Any = None  # the badge record's ``card`` object, as received (None: none)
    card_kind: str = ""  # the kind the card is registered as ("" unregistered)
    card_check: str = ""  # CARD_* above
    card_counter: int | None = None  # the SUN read counter, when it decrypted
    card_jump: int | None = None  # reads of the card elsewhere since its last one here


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


# What a door timeline says about a span (CenterIndex.door_state); BOOT marks a boot in it.
SHUT, HELD, OPENED = 0, 1, 2  # ordered: the best door of a read wins
BOOT = "boot"


@dataclass(frozen=True, slots=True)
class BootFacts:
    """What one ``boot`` record declared: its door sensors and its (reader, driver) pairs."""

    doors: tuple[str, ...]
    readers: frozenset[tuple[str, str]]  # casefolded (reader, driver)

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> BootFacts:
        doors = data.get("doors") or ()
        pairs = data.get("reader_drivers")
        if isinstance(pairs, Mapping):
            readers = frozenset((str(r).casefold(), str(d).casefold()) for r, d in pairs.items())
        else:
            # Older agents list names and drivers apart: any listed reader with any driver.
            names = data.get("readers") or ()
            drivers = data.get("drivers") or ()
            readers = frozenset(
                (str(r).casefold(), str(d).casefold()) for r in names for d in drivers
            )
        listed = tuple(str(d) for d in doors) if isinstance(doors, list | tuple) else ()
        return cls(listed, readers)

    def lists(self, read: Read) -> bool:
        return (read.reader.casefold(), read.driver.casefold()) in self.readers


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
        # Per device: the seqs of its boot records (-1 for the one before the range) and
        # what each declared; a read takes the last one at or before its seq.
        self.boots: dict[str, tuple[list[int], list[BootFacts]]] = {}
        self.device_center: dict[str, str] = {}
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
            # Time, then seq: a boot at the same millisecond as an ``open`` comes after it.
            order = sorted(range(len(tl.times)), key=lambda i: (tl.times[i], tl.seqs[i]))
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
        self.device_center[dev] = log.center_id
        boot_seqs: list[int] = []
        boot_facts: list[BootFacts] = []
        boot_times: list[tuple[int, int]] = []
        if log.boot_before is not None:
            boot_seqs.append(-1)
            boot_facts.append(BootFacts.of(log.boot_before))
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
                        card=data.get("card"),
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
                boot_seqs.append(log.seq[i])
                boot_facts.append(BootFacts.of(data))
                boot_times.append((placed[i], log.seq[i]))
        self.boots[dev] = (boot_seqs, boot_facts)
        # Door state resets at each boot: an ``open`` before it no longer holds after it
        # (the agent records changes only, and nothing says the door stayed open).
        for sensor in self.sensors.get(dev, ()):
            tl = self.doors[(dev, sensor)]
            for at, seq in boot_times:
                tl.times.append(at)
                tl.states.append(BOOT)
                tl.seqs.append(seq)
        for ev in events:
            self.holes[dev].append(_event_span(ev, log, placed))

    def runs(self, gap_ms: int, *, per_reader: bool = False) -> Iterator[list[int]]:
        """Runs of reads at one device (or one reader), each less than ``gap_ms`` after
        the one before; each run is a list of positions in :attr:`reads`."""
        streams: dict[tuple[str, str], list[int]] = defaultdict(list)
        for k, read in enumerate(self.reads):
            streams[(read.device_id, read.reader if per_reader else "")].append(k)
        times = self.read_times
        for positions in streams.values():
            start = 0
            for k in range(1, len(positions) + 1):
                if k < len(positions) and times[positions[k]] - times[positions[k - 1]] < gap_ms:
                    continue
                yield positions[start:k]
                start = k

    def boot_of(self, read: Read) -> BootFacts | None:
        """What the device's latest boot record at or before the read declared, if any."""
        seqs, facts = self.boots.get(read.device_id, ([], []))
        k = bisect_right(seqs, read.seq) - 1
        return facts[k] if k >= 0 else None

    def door_state(self, device: str, sensor: str, lo: int, hi: int) -> int:
        """:data:`SHUT`, :data:`OPENED` or :data:`HELD` for ``lo`` to ``hi``.

        ``OPENED``: an ``open`` falls in the span, or the door was opened before ``lo``
        less than ``door_open_max_ms`` before it (no ``closed``, no boot since). ``HELD``:
        open at ``lo`` only through an older ``open``.
        """
        tl = self.doors.get((device, sensor))
        if tl is None:
            return SHUT
        states = tl.states
        k = bisect_right(tl.times, lo) - 1
        end = bisect_right(tl.times, hi)
        for j in range(k + 1, end):
            if states[j] == "open":
                return OPENED
        if k >= 0 and states[k] == "open":
            return OPENED if tl.times[k] + self.settings.door_open_max_ms >= lo else HELD
        return SHUT

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
                if tl.states[j] != BOOT
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
