"""Drain rate: a backlog in a real record buffer uploaded by the real Uploader.

A device that was offline holds 100,000 pending records (10,000 with
``--quick``) in its :class:`RecordBuffer`. The :class:`Uploader` (through
:class:`~agent.records.store.RecordStore` and :class:`PortalClient`, exactly as the daemon wires
them) drains it to a portal on SQLite running as its own process (``python -m
portal serve``, every signature checked), both on this machine. Measured for
batches of 500, 1,000 and 2,000 records; each drain starts from a copy of the
same buffer and of the same freshly enrolled portal.

The ceiling, measured in the same run right before each drain: the same
batches, gzip-encoded before the clock starts, posted in order with one httpx
client to a fresh copy of the portal: the portal's ingest alone, no device
work. The backlog is built through the buffer's own segment format (the fast
path of bench/buffer.py); the drain and everything after it are the real code.

Tap-to-durable and tap-to-receipt latency, the daemon's memory and the kill
loop belong to the daemon: they come from ``bench.daemon_figures`` when that
module exists.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from agent.buffer.buffer import RecordBuffer
from agent.clock import SystemClock
from agent.config import BufferConfig
from agent.protocol import ZERO_HASH, build_record, public_key_b64
from agent.records.store import RecordStore
from agent.uplink.client import PortalClient
from agent.uplink.codec import encode_record, gzip_batch
from agent.uplink.policy import UploadPolicy
from agent.uplink.uploader import Uploader
from bench.buffer import _SegmentWriter
from bench.common import finish, parse_args, table
from bench.daemon_figures import daemon_note, measure_daemon
from bench.ingest import portal_process, process_cpu_s
from portal.db import create_engine_for, upgrade_to_head
from portal.db.schema import records as records_table
from portal.registry import add_center, create_enroll_token
from portal.settings import Settings

BATCHES = (500, 1000, 2000)
GOAL_S = 30.0
SEGMENT_RECORDS = 256  # the buffer's default


def build_backlog(state_dir: Path, key: Ed25519PrivateKey, device: str, n: int) -> None:
    """``n`` signed badge and heartbeat records written as pending segments."""
    writer = _SegmentWriter(state_dir, SEGMENT_RECORDS)
    boot = str(uuid.uuid4())
    prev = ZERO_HASH
    for seq in range(1, n + 1):
        if seq % 10 == 0:
            kind, data = "heartbeat", {"pending": seq, "readers": {"door": "ok"}, "uptime_s": seq}
        else:
            kind = "badge"
            data = {"reader": "door", "driver": "mfrc522", "uid": f"{seq:08X}", "uid_len": 4}
        record = build_record(
            key, device=device, seq=seq, prev=prev, type=kind,
            wall_ms=1_764_000_000_000 + seq * 2000, synced=True, boot=boot,
            mono_ns=seq * 2_000_000_000, anchor="", data=data,
        )  # fmt: skip
        prev = record["hash"]
        writer.add(record)
    writer.finish()


def enroll_template(data_dir: Path, key: Ed25519PrivateKey) -> tuple[str, str]:
    """A migrated portal with one center and the device enrolled over HTTP; its id and key."""
    settings = Settings(data_dir=data_dir)
    engine = create_engine_for(settings)
    upgrade_to_head(engine)
    add_center(engine, "bench", "Bench center", now=int(time.time() * 1000))
    token = create_enroll_token(engine, "bench", 3_600_000, now=int(time.time() * 1000))
    engine.dispose()
    with portal_process(settings, "all") as (url, _), PortalClient(url, insecure=True) as client:
        done = client.enroll(token, public_key_b64(key), "bench", {"model": "bench"})
    return done["device_id"], done["portal_public_key"]


def stored_count(settings: Settings, device: str) -> int:
    engine = create_engine_for(settings)
    try:
        with engine.connect() as conn:
            query = select(func.count()).where(records_table.c.device_id == device)
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def ceiling(
    template: Path, work: Path, device: str, backlog: Sequence[dict[str, Any]], batch: int
) -> tuple[float, float]:
    """Records/s of the portal alone for these batches, and its CPU µs per record."""
    data_dir = work / f"ceiling-{batch}-{uuid.uuid4().hex[:8]}"
    shutil.copytree(template, data_dir)
    settings = Settings(data_dir=data_dir)
    bodies = [
        gzip_batch([encode_record(r) for r in backlog[i : i + batch]])
        for i in range(0, len(backlog), batch)
    ]
    path = f"/api/v1/devices/{device}/records"
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    with (
        portal_process(settings, "all") as (url, pid),
        httpx.Client(base_url=url, timeout=300) as http,
    ):
        cpu = process_cpu_s(pid)
        start = time.perf_counter()
        for body in bodies:
            answer = http.post(path, content=body, headers=headers)
            if answer.status_code != 200:
                raise RuntimeError(
                    f"ceiling upload refused: {answer.status_code} {answer.text[:200]}"
                )
        elapsed = time.perf_counter() - start
        cpu_us = (process_cpu_s(pid) - cpu) / len(backlog) * 1e6
    if stored_count(settings, device) != len(backlog):
        raise RuntimeError("ceiling run: the portal does not hold the whole backlog")
    return len(backlog) / elapsed, cpu_us


def drain(
    template: Path,
    backlog_dir: Path,
    work: Path,
    key: Ed25519PrivateKey,
    device: str,
    portal_key: str,
    batch: int,
    n: int,
) -> dict[str, float]:
    """Drain a copy of the backlog with the Uploader; seconds, rate and CPU figures."""
    data_dir, state_dir = work / f"portal-{batch}", work / f"device-{batch}"
    shutil.copytree(template, data_dir)
    shutil.copytree(backlog_dir, state_dir)
    settings = Settings(data_dir=data_dir)
    clock = SystemClock()
    buffer = RecordBuffer(state_dir, BufferConfig(quota_mb=4096), clock=clock).open()
    try:
        assert buffer.pending_count == n, (buffer.pending_count, n)
        store = RecordStore(buffer, key, device, clock)
        policy = UploadPolicy(batch_records=batch, batch_bytes=8_000_000)
        with portal_process(settings, "all") as (url, pid):
            client = PortalClient(url, insecure=True, timeout_s=120)
            uploader = Uploader(store, client, policy, portal_key, device, clock)
            portal_cpu = process_cpu_s(pid)
            device_cpu = time.process_time()
            start = time.perf_counter()
            rounds = 0
            while store.pending_count:
                result = uploader.run_once()
                rounds += 1
                if result.error is not None:
                    raise RuntimeError(f"drain failed: {result.error}")
            elapsed = time.perf_counter() - start
            device_cpu = time.process_time() - device_cpu
            portal_cpu = process_cpu_s(pid) - portal_cpu
            client.close()
        segments_left = len(list(buffer.layout.segments.iterdir()))
    finally:
        buffer.close()
    if stored_count(settings, device) != n:
        raise RuntimeError("drain: the portal does not hold the whole backlog")
    return {
        "seconds": elapsed,
        "per_s": n / elapsed,
        "device_cpu_us": device_cpu / n * 1e6,
        "portal_cpu_us": portal_cpu / n * 1e6,
        "rounds": rounds,
        "segments_left": segments_left,
    }


def daemon_figures(quick: bool) -> tuple[dict[str, Any], str]:
    """The daemon's figures and their table."""
    figures: dict[str, Any] = measure_daemon(quick)
    return figures, daemon_note(figures)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv)
    n = 10_000 if args.quick else 100_000
    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory(prefix="qatysu-drain-") as tmp:
        work = Path(tmp)
        template = work / "template"
        device, portal_key = enroll_template(template, key)
        print(f"building a backlog of {n:,} records ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        backlog_dir = work / "backlog"
        build_backlog(backlog_dir, key, device, n)
        with RecordBuffer(backlog_dir, BufferConfig(quota_mb=4096)) as buffer:
            backlog = buffer.pending()
        build_s = time.perf_counter() - started
        load_before = os.getloadavg()[0]
        rows, results = [], {}
        for batch in BATCHES:
            print(f"batch {batch}: ceiling, drain, ceiling ...", file=sys.stderr, flush=True)
            before, cpu_before = ceiling(template, work, device, backlog, batch)
            got = drain(template, backlog_dir, work, key, device, portal_key, batch, n)
            after, cpu_after = ceiling(template, work, device, backlog, batch)
            # The machine is shared and drifts: compare with the mean of the two around it.
            top, top_cpu = (before + after) / 2, (cpu_before + cpu_after) / 2
            results[batch] = (top, top_cpu, got)
            print(
                f"batch {batch}: drain {got['seconds']:.1f} s, {got['per_s']:.0f}/s; "
                f"ceiling {before:.0f}/s and {after:.0f}/s",
                file=sys.stderr,
                flush=True,
            )
            rows.append(
                (
                    f"{batch:,}",
                    round(got["seconds"], 1),
                    round(got["per_s"]),
                    round(top),
                    f"{got['per_s'] / top:.2f}x",
                    round(got["device_cpu_us"], 1),
                    round(got["portal_cpu_us"], 1),
                    round(top_cpu, 1),
                )
            )
    # The batch size whose drain comes closest to the portal's own rate: a ratio
    # measured side by side, steadier on a shared machine than either time alone.
    load_after = os.getloadavg()[0]
    best = max(results, key=lambda b: results[b][2]["per_s"] / results[b][0])
    top, _, got = results[best]
    scale = 100_000 / n
    print("the daemon's figures (bench.daemon_figures) ...", file=sys.stderr, flush=True)
    daemon, daemon_note = daemon_figures(args.quick)
    headline: dict[str, Any] = {
        "records": n,
        "batch_records": best,
        "drain_100k_s": round(got["seconds"] * scale, 1),
        "drain_records_per_s": round(got["per_s"]),
        "ingest_ceiling_per_s": round(top),
        "drain_vs_ceiling": round(got["per_s"] / top, 2),
        **daemon,
    }
    measured = "measured" if n == 100_000 else f"extrapolated from {n:,} records"
    verdict = "meets" if headline["drain_100k_s"] < GOAL_S else "misses"
    body = f"""
A backlog of {n:,} pending records (built in {build_s:.0f} s through the buffer's
segment format) drained by the real `Uploader` over HTTP to a portal on SQLite in
its own process (every signature checked), both on this machine. The ceiling is the
same portal ingesting the same batches, pre-encoded, from a bare httpx client, in
the same run right before and right after each drain (the mean of the two; the
machine is shared and its speed drifts). CPU columns are µs per record: the device
process (read, encode, gzip, receipt check, acknowledge and delete) and the portal
process.

{table(["batch", "drain s", "drain rec/s", "ceiling rec/s", "drain/ceiling",
        "device CPU µs", "portal CPU µs (drain)", "portal CPU µs (ceiling)"], rows)}

Best batch (closest to the ceiling): {best:,} records. 100,000 records drain in
{headline["drain_100k_s"]} s ({measured}); goal under {GOAL_S:.0f} s: {verdict} it.
The portal's ingest (signature checks on two cores shared with the device process)
is the limit: the drain runs at {headline["drain_vs_ceiling"]}x the portal's own
rate, and the device spends about a quarter of the portal's CPU per record. Load
average of the machine (2 cores) before and after: {load_before:.1f} and
{load_after:.1f}; absolute rates scale with what else the machine runs, the ratio
much less.

{daemon_note}
"""  # fmt: skip
    finish("drain", "Drain rate (issue 6)", body, headline, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
