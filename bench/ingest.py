"""Portal ingest: records per second through HTTP on SQLite and PostgreSQL.

The portal runs as its own process (``python -m portal serve``); this process is
the client, posting pre-built gzip batches of 500 records, so client and server
share the machine's two cores as a real test rig would. Baselines measured in
the same run: the raw Ed25519 verify rate on one core, and a plain bulk insert
of the same rows with no verification. With a PostgreSQL DSN
(``QATYSU_TEST_PG_DSN``), the city day is also served by ``serve --workers 1``
and ``--workers 4`` on PostgreSQL, the devices uploading concurrently. The
every-signature SQLite stream is run twice: with UID-only badge reads, and with the
badge reads of NTAG 424 DNA SUN cards (7-byte UID and a ``card`` object, made by the
test cards' simulation), whose ratio is the issue-16 goal (within 10 %).
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol import ZERO_HASH, build_record, private_key_from_raw, private_key_raw
from agent.protocol import public_key_b64 as pub_b64
from bench.common import ROOT, finish, load_average, load_note, median, parse_args, table
from portal.db import create_engine_for, upgrade_to_head
from portal.db.schema import records as records_table
from portal.registry import add_center, create_enroll_token, enroll_device
from portal.settings import Settings
from tests.cards.sun import sun_field
from tests.support.processes import child_pids

BATCH = 500
CITY_DEVICES = 150
CITY_DAY = 57_000
CITY_MONTH = 1_700_000
DRAIN_BACKLOG = 100_000
MONTH_BUDGET_S = 600.0  # measure the month fully only if it should fit in this
WORKER_COUNTS = (1, 4)  # serve --workers N on PostgreSQL, the city day
WORKER_THREADS = 8  # devices uploading at the same time in the workers runs


# --- records -------------------------------------------------------------------------


_SUN_META = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
_SUN_FILE = bytes.fromhex("FFEEDDCCBBAA99887766554433221100")


def _badge_data(seq: int, sun: bool) -> dict[str, Any]:
    if not sun:
        return {"reader": "door", "driver": "mfrc522", "uid": f"{seq:08X}", "uid_len": 4}
    uid = bytes.fromhex(f"04{seq % 4096:012X}")
    card = sun_field(_SUN_META, _SUN_FILE, uid, seq)
    return {"reader": "door", "driver": "mfrc522", "uid": uid.hex().upper(), "uid_len": 7,
            "card": card}  # fmt: skip


def make_chain(
    key_raw: bytes, device: str, count: int, start_ms: int, sun: bool = False
) -> list[dict[str, Any]]:
    """``count`` records of one device: heartbeats every 300 s, badge reads between
    (of SUN cards when ``sun``)."""
    key = private_key_from_raw(key_raw)
    boot = str(uuid.UUID(int=int.from_bytes(key_raw[:16], "big")))
    out: list[dict[str, Any]] = []
    prev = ZERO_HASH
    wall = start_ms
    for seq in range(1, count + 1):
        if seq % 4 == 0:
            kind, data = "badge", _badge_data(seq, sun)
        else:
            kind, data = (
                "heartbeat",
                {"pending": seq % 17, "readers": {"door": "ok"}, "uptime_s": seq * 300},
            )
        wall += 100_000
        record = build_record(
            key, device=device, seq=seq, prev=prev, type=kind, wall_ms=wall, synced=True,
            boot=boot, mono_ns=seq * 100_000_000_000, anchor="", data=data,
        )  # fmt: skip
        prev = record["hash"]
        out.append(record)
    return out


def gzip_batches(chain: Sequence[dict[str, Any]]) -> list[bytes]:
    return [
        gzip.compress(json.dumps({"records": list(chain[i : i + BATCH])}).encode(), 6)
        for i in range(0, len(chain), BATCH)
    ]


def _device_bodies(job: tuple[bytes, str, int, bool]) -> list[bytes]:
    key_raw, device, count, sun = job
    return gzip_batches(make_chain(key_raw, device, count, 1_764_000_000_000, sun))


@dataclass
class Fleet:
    """Enrolled devices with their keys."""

    ids: list[str]
    keys: list[bytes]


def enroll_fleet(settings: Settings, n: int) -> Fleet:
    engine = create_engine_for(settings)
    upgrade_to_head(engine)
    add_center(engine, "bench", "Bench center", now=1)
    fleet = Fleet([], [])
    for _ in range(n):
        key = Ed25519PrivateKey.generate()
        token = create_enroll_token(engine, "bench", 3_600_000, now=int(time.time() * 1000))
        done = enroll_device(engine, token, pub_b64(key), "bench", {}, now=int(time.time() * 1000))
        fleet.ids.append(done.device_id)
        fleet.keys.append(private_key_raw(key))
    engine.dispose()
    return fleet


def build_bodies(fleet: Fleet, per_device: int, sun: bool = False) -> list[list[bytes]]:
    """Gzip batches per device, built on both cores before any timing."""
    jobs = [(k, d, per_device, sun) for k, d in zip(fleet.keys, fleet.ids, strict=True)]
    with ProcessPoolExecutor(2) as pool:
        return list(pool.map(_device_bodies, jobs, chunksize=4))


# --- the portal process --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def portal_process(
    settings: Settings, mode: str, workers: int | None = None
) -> Iterator[tuple[str, int]]:
    """``python -m portal serve`` (``--workers N`` if given); yields its URL and pid."""
    port = _free_port()
    env = dict(
        os.environ,
        QATYSU_PORTAL_CHECK_SIGNATURES=mode,
        QATYSU_PORTAL_RATE_PER_S="1000000",
        QATYSU_PORTAL_RATE_BURST="1000000",
        QATYSU_PORTAL_SIGNATURE_PASS_S="3600",  # keep the background pass out of the timing
        QATYSU_PORTAL_DB=settings.db_url,
    )
    cmd = [sys.executable, "-m", "portal", "--data-dir", str(settings.data_dir), "serve",
           "--port", str(port), "--no-access-log"]  # fmt: skip
    if workers is not None:
        cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"portal did not start: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            threading.Event().wait(0.1)
        if workers is not None and workers > 1:
            # The first worker up answers the health check; wait for all of them,
            # then give the last ones time to open the store before anything is timed.
            while len(child_pids(proc.pid)) < workers:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{workers} workers did not start")
                threading.Event().wait(0.1)
            threading.Event().wait(3.0)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def post_all(
    url: str, fleet: Fleet, bodies: list[list[bytes]], threads: int, close: bool = False
) -> tuple[float, list[float]]:
    """Upload every device's batches (in order per device); wall time and per-batch rates.

    ``close`` sends every batch on a fresh connection, so that with several
    workers on one socket each request goes to whichever worker accepts it,
    rather than staying with the worker that accepted a kept-alive connection.
    """
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    if close:
        headers["Connection"] = "close"
    rates: list[float] = []
    lock = threading.Lock()
    # One client for all uploads: a client per device would build a TLS context
    # each time (tens of ms of CPU taken from the portal on this shared machine),
    # where real devices each bring their own CPU.
    client = httpx.Client(base_url=url, timeout=300)

    def upload(index: int) -> None:
        for body in bodies[index]:
            t0 = time.perf_counter()
            response = client.post(
                f"/api/v1/devices/{fleet.ids[index]}/records",
                content=body,
                headers=headers,
            )
            elapsed = time.perf_counter() - t0
            if response.status_code != 200:
                raise RuntimeError(f"upload refused: {response.status_code} {response.text[:300]}")
            with lock:
                rates.append(response.json()["accepted"] / elapsed)

    start = time.perf_counter()
    with client, ThreadPoolExecutor(threads) as pool:
        list(pool.map(upload, range(len(fleet.ids))))
    return time.perf_counter() - start, rates


# --- stores --------------------------------------------------------------------------


@contextmanager
def store(kind: str, dsn: str | None) -> Iterator[Settings]:
    """A fresh SQLite file, or a fresh PostgreSQL schema dropped afterwards."""
    with tempfile.TemporaryDirectory(prefix="qatysu-bench-") as tmp:
        if kind == "sqlite":
            yield Settings(data_dir=Path(tmp))
            return
        assert dsn is not None
        schema = f"qatysu_bench_{secrets.token_hex(4)}"
        admin = sqlalchemy.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in dsn else "?"
        try:
            yield Settings(data_dir=Path(tmp), db_url=f"{dsn}{sep}options=-csearch_path%3D{schema}")
        finally:
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            admin.dispose()


def stream_rate(
    kind: str, dsn: str | None, mode: str, count: int, sun: bool = False
) -> tuple[float, float]:
    """One device uploading ``count`` records in order: overall and median batch rate."""
    with store(kind, dsn) as settings:
        fleet = enroll_fleet(settings, 1)
        bodies = build_bodies(fleet, count, sun)
        with portal_process(settings, mode) as (url, pid):
            cpu_before = process_cpu_s(pid)
            elapsed, rates = post_all(url, fleet, bodies, threads=1)
            name = f"{kind}_{mode}" + ("_sun" if sun else "")
            SERVER_CPU_US[name] = (process_cpu_s(pid) - cpu_before) / count * 1e6
    return count / elapsed, median(rates)


SERVER_CPU_US: dict[str, float] = {}  # portal process CPU time per record, by run


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of process ``pid``, all threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_verify_cpu_us(n: int) -> float:
    """CPU microseconds of one Ed25519 verify (immune to other processes' load)."""
    key = Ed25519PrivateKey.generate()
    data = b"x" * 400
    sig = key.sign(data)
    public = key.public_key()
    start = time.thread_time()
    for _ in range(n):
        public.verify(sig, data)
    return (time.thread_time() - start) / n * 1e6


def raw_verify_rate(n: int) -> float:
    key = Ed25519PrivateKey.generate()
    record = make_chain(private_key_raw(key), "dev-x", 1, 0)[0]
    data = json.dumps({k: v for k, v in record.items() if k not in ("hash", "sig")},
                      sort_keys=True, separators=(",", ":")).encode()  # fmt: skip
    sig = key.sign(data)
    public = key.public_key()
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            public.verify(sig, data)
        runs.append(n / (time.perf_counter() - t0))
    return median(runs)


def plain_insert_rate(count: int) -> float:
    """The same rows into the same SQLite schema, 500 per transaction, nothing verified."""
    key = Ed25519PrivateKey.generate()
    chain = make_chain(private_key_raw(key), "dev-plain", count, 0)
    with store("sqlite", None) as settings:
        fleet = enroll_fleet(settings, 1)
        engine = create_engine_for(settings)
        rows = [
            {"device_id": fleet.ids[0], "seq": r["seq"], "hash": r["hash"], "prev": r["prev"],
             "type": r["type"], "wall_ms": r["wall_ms"], "synced": r["synced"], "boot": r["boot"],
             "mono_ns": r["mono_ns"], "anchor": r["anchor"], "data": r["data"], "body": r,
             "received_ms": 1, "covered_ms": 1, "sig_checked": True}
            for r in chain
        ]  # fmt: skip
        t0 = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            with engine.begin() as conn:
                conn.execute(sqlalchemy.insert(records_table), rows[i : i + BATCH])
        elapsed = time.perf_counter() - t0
        engine.dispose()
    return count / elapsed


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of process ``pid`` and its children (the workers) now."""
    total = 0.0
    for one in [pid, *child_pids(pid)]:
        with suppress(OSError):
            total += process_cpu_s(one)
    return total


def workers_city_time(dsn: str, workers: int, devices: int, per_device: int) -> tuple[float, float]:
    """The city day on a fresh PostgreSQL schema served by ``serve --workers N``.

    Returns the wall time and the portal's CPU µs per record (all its processes;
    PostgreSQL's own processes are not counted).
    """
    with store("postgres", dsn) as settings:
        fleet = enroll_fleet(settings, devices)
        bodies = build_bodies(fleet, per_device)
        with portal_process(settings, "all", workers=workers) as (url, pid):
            cpu_before = tree_cpu_s(pid)
            elapsed, _ = post_all(url, fleet, bodies, threads=WORKER_THREADS, close=True)
            cpu_us = (tree_cpu_s(pid) - cpu_before) / (devices * per_device) * 1e6
    return elapsed, cpu_us


def city_time(kind: str, dsn: str | None, devices: int, per_device: int) -> float:
    """Wall time for ``devices`` devices uploading ``per_device`` records each, 4 at a time."""
    with store(kind, dsn) as settings:
        fleet = enroll_fleet(settings, devices)
        bodies = build_bodies(fleet, per_device)
        with portal_process(settings, "all") as (url, _pid):
            elapsed, _ = post_all(url, fleet, bodies, threads=4)
    return elapsed


def workers_section(
    seconds: dict[int, float],
    cpu_us: dict[int, float],
    loads: dict[int, float],
    ratio: float | None,
    baseline: dict[str, float],
    day_note: str,
) -> str:
    """The markdown on the city day served by ``serve --workers 1`` and ``--workers 4``."""
    if not seconds or ratio is None:
        return (
            "City day with `serve --workers 1` and `--workers 4` on PostgreSQL: not measured "
            "(set `QATYSU_TEST_PG_DSN` to a PostgreSQL DSN).\n\n"
        )
    cores = os.cpu_count() or 1
    rows = [
        [
            f"`serve --workers {n}`",
            seconds[n],
            f"{CITY_DAY / seconds[n]:,.0f}",
            cpu_us[n],
            f"{baseline[f'workers_{n}']:,.0f}/s",
            f"{loads[n]:.1f}",
        ]
        for n in sorted(seconds)
    ]
    return (
        f"The city day ({CITY_DAY:,} records, {CITY_DEVICES} devices, every signature) on "
        "PostgreSQL, served by `python -m portal serve --workers N` (a fresh schema each, "
        f"rate limits raised so it measures ingest, not throttling), {WORKER_THREADS} devices "
        "uploading at a time, each batch on a fresh connection so that requests spread over "
        f"the workers. Seconds: {day_note}.\n\n"
        + table(
            [
                "city day, PostgreSQL",
                "seconds",
                "records/s",
                "portal CPU µs per record (all processes)",
                "raw verify around it",
                "1-min load after it",
            ],
            rows,
        )
        + f"\n\nWall time with 4 workers over 1 worker: {ratio:.2f} "
        f"({1 / ratio:.2f}x the throughput). This machine has {cores} cores, shared by the "
        "uploading client, the portal's processes and PostgreSQL (and other work): 4 workers "
        f"on {cores} cores cannot be expected to be 4x; the figure is what was measured here, "
        "not what 4 workers would give on 4 free cores. The CPU column does not count PostgreSQL's "
        "own processes.\n\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv)
    dsn = os.environ.get("QATYSU_TEST_PG_DSN") or None
    stream = 3_000 if args.quick else 20_000
    print(f"raw verify, plain insert, {stream}-record streams ...", file=sys.stderr, flush=True)
    # The machine is shared and its speed drifts: the raw verify rate is sampled
    # before and after every measured run, and each run is compared with the mean
    # of the two samples around it.
    verifies = 2_000 if args.quick else 5_000
    samples = [raw_verify_rate(verifies)]
    loads = [load_average()]
    baseline: dict[str, float] = {}

    def bracketed(name: str, value: Any) -> Any:
        loads.append(load_average())
        samples.append(raw_verify_rate(verifies))
        baseline[name] = (samples[-2] + samples[-1]) / 2
        return value

    plain = bracketed("plain", plain_insert_rate(stream))
    sqlite_all, sqlite_all_med = bracketed("sqlite_all", stream_rate("sqlite", None, "all", stream))
    sqlite_sun, sqlite_sun_med = bracketed(
        "sqlite_all_sun", stream_rate("sqlite", None, "all", stream, sun=True)
    )
    # SUN-card reads against UID-card reads, each against the raw verify rate around it.
    sun_ratio = (sqlite_sun / baseline["sqlite_all_sun"]) / (sqlite_all / baseline["sqlite_all"])
    sqlite_tail, sqlite_tail_med = bracketed(
        "sqlite_tail", stream_rate("sqlite", None, "tail", stream)
    )
    pg_all = pg_all_med = pg_tail = pg_tail_med = None
    if dsn:
        pg_all, pg_all_med = bracketed("pg_all", stream_rate("postgres", dsn, "all", stream))
        pg_tail, pg_tail_med = bracketed("pg_tail", stream_rate("postgres", dsn, "tail", stream))
    per_device = CITY_DAY // CITY_DEVICES  # 380
    day_devices = 30 if args.quick else CITY_DEVICES
    print(f"city day with {day_devices} devices ...", file=sys.stderr, flush=True)
    measured_day = bracketed("city_day", city_time("sqlite", None, day_devices, per_device))
    city_day = measured_day * CITY_DEVICES / day_devices
    day_note = (
        "measured" if day_devices == CITY_DEVICES else f"extrapolated from {day_devices} devices"
    )
    workers_s: dict[int, float] = {}
    workers_cpu: dict[int, float] = {}
    workers_load: dict[int, float] = {}  # the 1-minute load average right after each run
    if dsn:
        for n in WORKER_COUNTS:
            print(f"city day, PostgreSQL, serve --workers {n} ...", file=sys.stderr, flush=True)
            elapsed, cpu_us = workers_city_time(dsn, n, day_devices, per_device)
            workers_s[n] = bracketed(f"workers_{n}", elapsed) * CITY_DEVICES / day_devices
            workers_cpu[n] = cpu_us
            workers_load[n] = loads[-1]
    workers_ratio = workers_s[4] / workers_s[1] if workers_s else None
    raw = median(samples)
    verify_cpu = raw_verify_cpu_us(verifies)
    month_estimate = city_day * CITY_MONTH / CITY_DAY
    if not args.quick and month_estimate < MONTH_BUDGET_S:
        print("city month (1.7 M records) ...", file=sys.stderr, flush=True)
        city_month = city_time("sqlite", None, CITY_DEVICES, CITY_MONTH // CITY_DEVICES)
        month_note = "measured"
        loads.append(load_average())
    else:
        city_month = month_estimate
        month_note = "extrapolated from the city day"

    drain_ceiling = DRAIN_BACKLOG / sqlite_all

    def ratio(value: float | None, name: str) -> str:
        return "n/a" if value is None else f"{value / baseline[name]:.2f}x"

    def row(what: str, name: str, rate: float | None, med: float | None) -> list[Any]:
        shown = ["n/a" if rate is None else rate, "n/a" if med is None else med]
        return [what, *shown, ratio(rate, name)]

    rows = [
        ["raw Ed25519 verify, one core (median of samples)", raw, "", "1.00x"],
        row("plain bulk insert, SQLite, no checks (baseline)", "plain", plain, None),
        row("HTTP ingest, SQLite, every signature", "sqlite_all", sqlite_all, sqlite_all_med),
        row(
            "HTTP ingest, SQLite, every signature, SUN-card reads",
            "sqlite_all_sun",
            sqlite_sun,
            sqlite_sun_med,
        ),
        row("HTTP ingest, SQLite, tail signature", "sqlite_tail", sqlite_tail, sqlite_tail_med),
        row("HTTP ingest, PostgreSQL, every signature", "pg_all", pg_all, pg_all_med),
        row("HTTP ingest, PostgreSQL, tail signature", "pg_tail", pg_tail, pg_tail_med),
    ]  # fmt: skip
    body = (
        f"One device uploads {stream:,} records in gzip batches of {BATCH} to a portal "
        "running as a separate process (`python -m portal serve`) on the same machine; "
        "records/s is the whole stream over wall time, the median is over batches. "
        "Each ratio is against the raw one-core verify rate sampled right before and "
        "right after that run (the mean of the two), since the shared machine's speed "
        "drifts during the run; the table's raw rate is the median of all samples.\n\n"
        + table(["what", "records/s", "median batch records/s", "vs raw verify"], rows)
        + "\n\n"
        + table(
            ["city scenario (SQLite, every signature, 4 uploads at a time)", "seconds", "how"],
            [
                [
                    f"city day: {CITY_DAY:,} records, {CITY_DEVICES} devices",
                    city_day,
                    f"{day_note}; raw verify around it {baseline['city_day']:,.0f}/s",
                ],
                [f"city month: {CITY_MONTH:,} records", city_month, month_note],
                [
                    f"one device's backlog of {DRAIN_BACKLOG:,} records (drain ceiling, issue 6)",
                    drain_ceiling,
                    "at the every-signature SQLite stream rate above",
                ],
            ],
        )
        + "\n\n"
        + workers_section(workers_s, workers_cpu, workers_load, workers_ratio, baseline, day_note)
        + table(
            ["CPU time (all threads of the portal process)", "µs per record", "vs one verify"],
            [["one raw Ed25519 verify (baseline)", verify_cpu, "1.00x"]]
            + [
                [f"ingest, {name.replace('_', ', ')}", us, f"{us / verify_cpu:.2f}x"]
                for name, us in SERVER_CPU_US.items()
            ],
        )
        + "\n\nCPU time per record depends much less on how busy the machine is than"
        f" wall time: at {SERVER_CPU_US['sqlite_all']:.0f} µs per record with every signature"
        " checked, one idle core doing all the work alone would ingest"
        f" {1e6 / SERVER_CPU_US['sqlite_all']:,.0f} records/s"
        f" ({verify_cpu / SERVER_CPU_US['sqlite_all']:.2f}x one verify's rate); the"
        " signature share can spread over the second core through the thread pool,"
        " as far as other work on the machine leaves that core free."
        + "\n\nGoals (issue 5): every-signature SQLite ingest at least 0.6x the one-core "
        f"raw verify rate (here {sqlite_all / baseline['sqlite_all']:.2f}x), city day under 15 s "
        f"(here {city_day:.1f} s). Issue 6 drains a {DRAIN_BACKLOG:,}-record backlog in under "
        f"30 s; this ingest alone would take {drain_ceiling:.1f} s for it. Issue 16: "
        "every-signature ingest with SUN-card reads within 10 % of the UID-card figure "
        f"(here {sun_ratio:.2f}x of it, each against the raw verify rate around it).\n\n"
        "The uploading threads share one HTTP client (decision 0523): a client per device "
        "cost the machine about 80 µs of CPU per record of the city day before.\n\n"
        + load_note(
            loads,
            "both cores (client and portal; the city scenarios run more threads than cores,"
            " the workers runs more processes than cores)",
        )
        + "\n"
    )
    headline = {
        "sqlite_records_per_s": round(sqlite_all, 1),
        "sqlite_tail_sig_records_per_s": round(sqlite_tail, 1),
        "sqlite_sun_records_per_s": round(sqlite_sun, 1),
        "sun_over_uid": round(sun_ratio, 3),
        "postgres_records_per_s": None if pg_all is None else round(pg_all, 1),
        "postgres_tail_sig_records_per_s": None if pg_tail is None else round(pg_tail, 1),
        "raw_verify_per_s": round(raw, 1),
        "plain_insert_per_s": round(plain, 1),
        "sqlite_vs_raw_verify": round(sqlite_all / baseline["sqlite_all"], 3),
        "raw_verify_samples": [round(x) for x in samples],
        "raw_verify_cpu_us": round(verify_cpu, 1),
        "server_cpu_us_per_record": {k: round(v, 1) for k, v in SERVER_CPU_US.items()},
        "city_day_s": round(city_day, 2),
        "drain_100k_ceiling_s": round(drain_ceiling, 1),
        "city_day_how": day_note,
        "city_month_s": round(city_month, 1),
        "city_month_how": month_note,
        "city_day_pg_workers_1_s": round(workers_s[1], 2) if workers_s else None,
        "city_day_pg_workers_4_s": round(workers_s[4], 2) if workers_s else None,
        "workers_4_over_1": None if workers_ratio is None else round(workers_ratio, 3),
        "city_day_pg_workers_how": f"{day_note}, {WORKER_THREADS} uploads at a time"
        if workers_s
        else "not measured (no QATYSU_TEST_PG_DSN)",
    }
    finish("ingest", "Portal ingest", body, headline, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
