"""Durable append latency and disk writes of the record buffer, against baselines.

Measured in one run, interleaved append by append so that load from other
work on the machine hits every contender alike:

- ours: ``RecordBuffer.append`` (TinyDB over append-only segments, one
  fsync per record) with 0, 10,000 and 100,000 records pending;
- stock TinyDB ``JSONStorage`` ``insert`` (rewrites the file, fsync) with 0
  and 10,000 documents (few samples at 10,000: each costs tens of ms);
- sqlite3, WAL, ``synchronous=FULL``: one INSERT and COMMIT per record;
- the floor: ``os.write`` of the same line plus ``os.fsync``.

Disk writes per record come from ``/proc/self/io`` ``write_bytes`` (what
the process sent to the block device; the ext4 journal's own writes are not
counted for anyone). Then the crash harness (bench/buffer_crash.py) kills a
writer 1,000 times (50 with ``--quick``) and counts lost records.

The pending backlog is built by writing segment files directly with the
buffer's own line format (the fast path); every measured append is a real
``RecordBuffer.append``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tinydb import TinyDB

from agent.buffer.buffer import RecordBuffer
from agent.buffer.files import Layout
from agent.buffer.lines import header_line, record_line, seal_line
from agent.buffer.state import State, write_state
from agent.config import BufferConfig
from agent.protocol import ZERO_HASH, build_record
from bench.buffer_crash import run_harness
from bench.common import finish, load_average, load_note, median, parse_args, percentile, table

DEVICE = "bench-device"
DATA = {"reader": "entrance", "driver": "mfrc522", "uid": "04A1B2C3D4E5F6", "uid_len": 7}


def write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def make_records(key: Ed25519PrivateKey, first: int, prev: str, n: int) -> Iterator[dict[str, Any]]:
    for seq in range(first, first + n):
        record = build_record(
            key,
            device=DEVICE,
            seq=seq,
            prev=prev,
            type="badge",
            wall_ms=1_760_000_000_000 + seq * 1000,
            synced=True,
            boot="6f1c1a4e-6a52-4b8e-9d55-2d1f0c8f7a10",
            mono_ns=seq * 1_000_000,
            anchor="",
            data=DATA,
        )
        prev = record["hash"]
        yield record


class Runner:
    """One contender at one backlog: ``step(i)`` makes the i-th record durable."""

    def __init__(self, name: str, step: Callable[[int], None], close: Callable[[], None]) -> None:
        self.name = name
        self.step = step
        self.close = close
        self.times: list[float] = []
        self.io_bytes = 0

    def run(self, count: int) -> None:
        before = write_bytes()
        for _ in range(count):
            index = len(self.times)
            started = time.perf_counter()
            self.step(index)
            self.times.append((time.perf_counter() - started) * 1000)
        self.io_bytes += write_bytes() - before

    @property
    def bytes_per_record(self) -> float:
        return self.io_bytes / len(self.times) if self.times else float("nan")


class Backlog:
    """The records already pending, written once into each contender's files."""

    def __init__(self, work: Path, key: Ed25519PrivateKey, levels: list[int]) -> None:
        self.work = work
        self.levels = levels
        self.tails: dict[int, tuple[int, str]] = {0: (0, ZERO_HASH)}
        self.stock_docs: dict[int, dict[str, dict[str, Any]]] = {0: {}}
        top = max(levels)
        segment_records = BufferConfig().segment_records
        ours = {n: _SegmentWriter(work / f"ours-{n}", segment_records) for n in levels if n}
        lite = {n: _sqlite(work / f"sqlite-{n}.db") for n in levels if n}
        rows: list[tuple[int, str]] = []
        for record in make_records(key, 1, ZERO_HASH, top):
            seq = record["seq"]
            for n, writer in ours.items():
                if seq <= n:
                    writer.add(record)
            rows.append((seq, json.dumps(record, separators=(",", ":"))))
            if seq <= 10_000 and 10_000 in levels:
                self.stock_docs.setdefault(10_000, {})[str(seq)] = record
            if seq in levels:
                self.tails[seq] = (seq, record["hash"])
        for writer in ours.values():
            writer.finish()
        for n, db in lite.items():
            db.executemany("INSERT INTO records VALUES (?, ?)", rows[:n])
            db.commit()
            db.close()


class _SegmentWriter:
    """The fast path: segment files in the buffer's own format, written in bulk."""

    def __init__(self, state_dir: Path, segment_records: int) -> None:
        self.layout = Layout.under(state_dir)
        self.layout.create()
        self.segment_records = segment_records
        self.chunk: list[dict[str, Any]] = []
        self.last: tuple[int, str] = (0, ZERO_HASH)

    def add(self, record: dict[str, Any]) -> None:
        self.chunk.append(record)
        if len(self.chunk) == self.segment_records:
            self._flush(sealed=True)

    def _flush(self, *, sealed: bool) -> None:
        if not self.chunk:
            return
        first = self.chunk[0]["seq"]
        last = self.chunk[-1]
        reserved = first + self.segment_records - 1
        parts = [header_line(first, reserved)] + [record_line(r["seq"], r) for r in self.chunk]
        if sealed:
            nxt = last["seq"] + 1
            parts.append(seal_line(last["seq"], last["hash"], nxt, nxt + self.segment_records - 1))
        self.layout.segment(first).write_bytes(b"".join(parts))
        self.last = (last["seq"], last["hash"])
        self.chunk = []

    def finish(self) -> None:
        # The newest full segment is sealed above; a seal needs its successor,
        # so write an empty active segment after it.
        if self.chunk:
            self._flush(sealed=False)
            reserved = self.last[0] + self.segment_records
        else:
            nxt = self.last[0] + 1
            reserved = nxt + self.segment_records - 1
            self.layout.segment(nxt).write_bytes(header_line(nxt, reserved))
        write_state(self.layout.state, State(reserved=reserved))


def _sqlite(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, body TEXT)")
    db.execute("BEGIN")
    return db


OPEN_SECONDS: dict[int, float] = {}  # how long open() (the recovery scan) took per backlog


def ours_runner(work: Path, level: int, key: Ed25519PrivateKey, backlog: Backlog) -> Runner:
    state_dir = work / f"ours-{level}"
    started = time.perf_counter()
    buffer = RecordBuffer(state_dir, BufferConfig(quota_mb=4096)).open()
    OPEN_SECONDS[level] = time.perf_counter() - started
    assert buffer.pending_count == level, (buffer.pending_count, level)
    seq, prev = backlog.tails[level]
    assert buffer.next_seq == seq + 1
    records = make_records(key, seq + 1, prev, 10**9)

    def step(_: int) -> None:
        buffer.append(next(records))

    return Runner(f"ours @ {level:,}", step, buffer.close)


def _prepared(key: Ed25519PrivateKey, count: int) -> list[dict[str, Any]]:
    return list(make_records(key, 10**7, ZERO_HASH, count))


def sqlite_runner(work: Path, level: int, records: list[dict[str, Any]]) -> Runner:
    db = sqlite3.connect(work / f"sqlite-{level}.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, body TEXT)")
    bodies = [json.dumps(r, separators=(",", ":")) for r in records]

    def step(i: int) -> None:
        db.execute("BEGIN")
        db.execute("INSERT INTO records VALUES (?, ?)", (10**8 + i, bodies[i % len(bodies)]))
        db.execute("COMMIT")

    return Runner(f"sqlite WAL FULL @ {level:,}", step, db.close)


def floor_runner(work: Path, records: list[dict[str, Any]]) -> Runner:
    lines = [record_line(r["seq"], r) for r in records]
    fd = os.open(work / "floor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def step(i: int) -> None:
        os.write(fd, lines[i % len(lines)])
        os.fsync(fd)

    return Runner("raw write + fsync", step, lambda: os.close(fd))


def stock_runner(work: Path, level: int, backlog: Backlog, records: list[dict[str, Any]]) -> Runner:
    path = work / f"stock-{level}.json"
    path.write_text(json.dumps({"_default": backlog.stock_docs[level]}))
    db = TinyDB(path)
    table = db.table("_default", cache_size=0)

    def step(i: int) -> None:
        table.insert(records[i % len(records)])

    return Runner(f"stock TinyDB JSONStorage @ {level:,}", step, db.close)


def main() -> None:
    args = parse_args(__doc__ or "")
    quick = args.quick
    levels = [0, 10_000, 100_000]
    samples = 300 if quick else 2000  # appends per contender and backlog
    stock_samples = {0: 60 if quick else 300, 10_000: 6 if quick else 24}
    kills = 50 if quick else 1000
    key = Ed25519PrivateKey.generate()
    work = Path(tempfile.mkdtemp(prefix="qatysu-bench-buffer-"))
    try:
        started = time.monotonic()
        backlog = Backlog(work, key, levels)
        build_s = time.monotonic() - started
        prepared = _prepared(key, 500)
        runners = {
            "ours": {n: ours_runner(work, n, key, backlog) for n in levels},
            "sqlite": {n: sqlite_runner(work, n, prepared) for n in levels},
            "stock": {n: stock_runner(work, n, backlog, prepared) for n in stock_samples},
        }
        floor = floor_runner(work, prepared)
        os.sync()  # the bulk-built backlog must not be flushed by the first measured fsyncs
        # One append per contender per round, in a shuffled order, so that
        # bursts of load from other work hit every contender alike.
        order = [floor, *runners["ours"].values(), *runners["sqlite"].values()]
        shuffle = random.Random(3)
        loads = [load_average()]
        for index in range(samples):
            shuffle.shuffle(order)
            for runner in order:
                runner.run(1)
            for n, count in stock_samples.items():
                if index % (samples // count) == 0:
                    runners["stock"][n].run(1)
        for group in runners.values():
            for runner in group.values():
                runner.close()
        floor.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    crash_started = time.monotonic()
    crash = run_harness(kills, seed=2026)
    crash_s = time.monotonic() - crash_started
    loads.append(load_average())

    ours, lite, stock = runners["ours"], runners["sqlite"], runners["stock"]
    line_bytes = len(record_line(prepared[0]["seq"], prepared[0]))
    rows = []
    for runner in [floor, *ours.values(), *lite.values(), *stock.values()]:
        rows.append(
            [
                runner.name,
                len(runner.times),
                median(runner.times),
                percentile(runner.times, 99),
                round(runner.bytes_per_record),
            ]
        )
    m0 = median(ours[0].times)
    headline = {
        "median_ms_at_0": round(m0, 3),
        "p99_ms_at_0": round(percentile(ours[0].times, 99), 3),
        "median_ms_at_100k": round(median(ours[100_000].times), 3),
        "p99_ms_at_100k": round(percentile(ours[100_000].times, 99), 3),
        "p99_ratio_100k_vs_0": round(
            percentile(ours[100_000].times, 99) / percentile(ours[0].times, 99), 2
        ),
        "stock_tinydb_ms_at_10k": round(median(stock[10_000].times), 1),
        "speedup_vs_stock_tinydb_at_10k": round(
            median(stock[10_000].times) / median(ours[10_000].times), 1
        ),
        "fsync_floor_ms": round(median(floor.times), 3),
        "sqlite_ms_at_0": round(median(lite[0].times), 3),
        "median_vs_fsync_floor": round(m0 / median(floor.times), 2),
        "median_vs_sqlite": round(m0 / median(lite[0].times), 2),
        "bytes_per_record": round(ours[0].bytes_per_record),
        "bytes_per_record_at_100k": round(ours[100_000].bytes_per_record),
        "line_bytes_per_record": line_bytes,
        "fsync_floor_bytes_per_record": round(floor.bytes_per_record),
        "stock_tinydb_bytes_per_record_at_10k": round(stock[10_000].bytes_per_record),
        "sqlite_bytes_per_record": round(lite[0].bytes_per_record),
        "open_s_at_100k": round(OPEN_SECONDS[100_000], 2),
        "kills": crash.kills,
        "lost": crash.lost,
        "crash_reported_durable": crash.reported_durable,
        "crash_chain_failures": crash.chain_failures,
        "crash_spurious_gaps": crash.spurious_gaps,
        "crash_kills_while_opening": crash.kills_while_opening,
    }
    body = f"""
Durable append: the call returns after the record is fsync'd. Latency in ms;
disk writes are `/proc/self/io` `write_bytes` per record (page-granular, so
one small fsync'd append costs at least one 4 KiB page plus metadata).
Contenders ran interleaved, one append each per round in a shuffled order,
on one ext4 file system. The
backlog (up to 100,000 records) was built in {build_s:.0f} s through the fast
path; each measured append is a real `RecordBuffer.append` of a new signed
record ({line_bytes} bytes per line).

{table(["contender @ pending", "appends", "median ms", "p99 ms", "bytes written/record"], rows)}

Opening the buffer (lock, scan and checksum every segment, plan recovery):
{OPEN_SECONDS[10_000]:.2f} s with 10,000 records pending, {OPEN_SECONDS[100_000]:.2f} s
with 100,000 (once per start of the agent).

Goals (issue 3): p99 at 100,000 pending within 2x of p99 at 0:
{headline["p99_ratio_100k_vs_0"]}x. At least 50x faster than stock TinyDB at
10,000 pending: {headline["speedup_vs_stock_tinydb_at_10k"]}x. Median within
3x of the raw fsync floor: {headline["median_vs_fsync_floor"]}x. Within 2x of
sqlite WAL FULL: {headline["median_vs_sqlite"]}x.

Crash harness: {crash.kills} SIGKILLs of a writer appending through
`ChainWriter` (and acknowledging now and then) in {crash_s:.0f} s, of which
{crash.kills_while_opening} landed before the buffer had finished opening;
{crash.reported_durable} records reported durable; **{crash.lost} lost**,
{crash.duplicated} duplicated, {crash.chain_failures} chain failures,
{crash.spurious_gaps} spurious gaps.

{load_note(loads, "about one core")}
"""
    finish("buffer", "Record buffer (issue 3)", body, headline, args)


if __name__ == "__main__":
    main()
