"""The buffer's crash harness: SIGKILL a writer at random moments, then check every record.

A forked child opens the buffer, appends signed records through
:class:`agent.records.chain.ChainWriter` as fast as it can, acknowledges now and then
with a receipt it signs as a stand-in portal, and reports on a pipe each seq
it saw returned durable (``D seq hash``) and each acknowledgement made
durable (``A seq``). The parent kills it with SIGKILL after a random number
of records plus a random delay (up to a few ms),
reopens the buffer and checks that every reported record above the last
acknowledged point is present exactly once, in order, with the same hash,
and that the chain verifies from the last acknowledged point.

``python -m bench.buffer_crash --kills N [--dir DIR]`` prints one JSON line.
Used by tests/buffer/test_lock_and_crash.py and bench/buffer.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.buffer.buffer import RecordBuffer
from agent.clock import SystemClock
from agent.config import BufferConfig
from agent.exceptions import BufferLockedError
from agent.protocol import build_receipt, verify_chain
from agent.records.chain import ChainWriter

DEVICE = "crash-device"
CONFIG = BufferConfig(segment_records=64, segment_age_s=3600)


@dataclass
class CrashReport:
    kills: int = 0
    reported_durable: int = 0
    lost: int = 0  # reported durable, not acknowledged, and missing or changed
    duplicated: int = 0
    chain_failures: int = 0
    spurious_gaps: int = 0  # lost ranges after a plain kill (there should be none)
    acknowledged: int = 0
    lock_waits: int = 0  # reopen attempts that found the lock still held
    kills_while_opening: int = 0  # the child died before its buffer was open
    acked_max: int = 0  # highest acknowledgement the child reported durable
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.chain_failures or self.spurious_gaps)


def _child(state_dir: Path, key: Ed25519PrivateKey, portal: Ed25519PrivateKey, fd: int) -> None:
    rng = random.Random(os.getpid())
    buffer = RecordBuffer(state_dir, CONFIG).open()
    writer = ChainWriter(buffer, key, DEVICE, SystemClock())
    os.write(fd, b"R\n")
    n = 0
    while True:
        record = writer.write("badge", {"reader": "door", "uid": f"{n:08X}", "uid_len": 4})
        os.write(fd, f"D {record['seq']} {record['hash']}\n".encode())
        n += 1
        if rng.random() < 0.1 and buffer.pending_count > 8:
            target = buffer.head[0] - rng.randrange(0, 8)
            stored = buffer.get(target)
            if stored is not None:
                receipt = build_receipt(
                    portal, device=DEVICE, seq=target, record_hash=stored["hash"], server_ms=n
                )
                buffer.acknowledge(receipt)
                os.write(fd, f"A {target}\n".encode())


def _spawn(state_dir: Path, key: Ed25519PrivateKey, portal: Ed25519PrivateKey) -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child until SIGKILL
        try:
            os.close(read_fd)
            _child(state_dir, key, portal, write_fd)
        finally:
            os._exit(3)
    os.close(write_fd)
    return pid, read_fd


def _read_until(fd: int, buffer: bytearray, token: bytes, deadline: float) -> bool:
    while token not in buffer:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return token in buffer
            buffer += chunk
    return True


def _read_until_count(
    fd: int, buffer: bytearray, token: bytes, count: int, deadline: float
) -> None:
    while buffer.count(token) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            buffer += chunk


def _drain(fd: int, buffer: bytearray) -> None:
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buffer += chunk
    os.close(fd)


def run_harness(
    kills: int,
    state_dir: Path | None = None,
    *,
    seed: int = 1,
    max_records: int = 12,
    max_delay_ms: float = 3.0,
) -> CrashReport:
    """Kill a writer ``kills`` times; check after each restart."""
    rng = random.Random(seed)
    key = Ed25519PrivateKey.generate()
    portal = Ed25519PrivateKey.generate()
    work = Path(tempfile.mkdtemp(prefix="qatysu-crash-")) if state_dir is None else state_dir
    report = CrashReport()
    durable: dict[int, str] = {}  # every seq reported durable and its hash
    for _ in range(kills):
        pid, fd = _spawn(work, key, portal)
        out = bytearray()
        if rng.random() < 0.1:
            # Sometimes the crash comes while the buffer is still opening
            # (recovery may be cutting a torn tail or rewriting a segment).
            time.sleep(rng.uniform(0, 3) / 1000)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            _drain(fd, out)
            report.kills += 1
            report.kills_while_opening += int(b"R\n" not in out)
            _tally(out, durable, report)
            _check(work, key, durable, report.acked_max, report)
            continue
        if not _read_until(fd, out, b"R\n", time.monotonic() + 30):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            _drain(fd, out)
            report.problems.append(f"child did not open the buffer: {bytes(out[-200:])!r}")
            break
        # The random moment of the crash: after a random number of records
        # (so the run makes progress however loaded the machine is), plus a
        # random fraction of a millisecond or more.
        target = rng.randrange(0, max_records)
        _read_until_count(fd, out, b"D ", target, time.monotonic() + 30)
        time.sleep(rng.uniform(0, max_delay_ms) / 1000)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        _drain(fd, out)
        report.kills += 1
        _tally(out, durable, report)
        _check(work, key, durable, report.acked_max, report)
        if report.lost or report.chain_failures:
            break
    return report


def _tally(out: bytearray, durable: dict[int, str], report: CrashReport) -> None:
    for line in out.decode().splitlines():
        parts = line.split()
        if parts and parts[0] == "D":
            seq, digest = int(parts[1]), parts[2]
            if seq in durable and durable[seq] != digest:
                report.problems.append(f"seq {seq} reported durable twice with two hashes")
            durable[seq] = digest
            report.reported_durable += 1
        elif parts and parts[0] == "A":
            report.acked_max = max(report.acked_max, int(parts[1]))
            report.acknowledged += 1


def _open_when_free(state_dir: Path, report: CrashReport) -> RecordBuffer:
    # The killed child may have been forking a helper (ctypes' find_library
    # runs ldconfig): until that grandchild execs, it shares the lock.
    deadline = time.monotonic() + 10
    while True:
        try:
            return RecordBuffer(state_dir, CONFIG).open()
        except BufferLockedError:
            if time.monotonic() > deadline:
                raise
            report.lock_waits += 1
            time.sleep(0.01)


def _check(
    state_dir: Path,
    key: Ed25519PrivateKey,
    durable: dict[int, str],
    acked_reported: int,
    report: CrashReport,
) -> None:
    buffer = _open_when_free(state_dir, report)
    with buffer:
        last_seq, last_hash = buffer.last_ack
        if last_seq < acked_reported:
            report.lost += acked_reported - last_seq
            report.problems.append(f"last_ack {last_seq} below reported ack {acked_reported}")
        if buffer.lost_ranges:
            report.spurious_gaps += len(buffer.lost_ranges)
            report.problems.append(f"lost ranges after a kill: {buffer.lost_ranges}")
        pending = buffer.pending()
    seqs = [r["seq"] for r in pending]
    if len(seqs) != len(set(seqs)):
        report.duplicated += len(seqs) - len(set(seqs))
    if seqs != sorted(seqs):
        report.chain_failures += 1
        report.problems.append("pending records out of order")
    present = {r["seq"]: r["hash"] for r in pending}
    for seq in [s for s in durable if s > last_seq]:
        if present.get(seq) != durable[seq]:
            report.lost += 1
            report.problems.append(f"record {seq} reported durable is missing or changed")
    # Acknowledged records are forgotten; keep the map small.
    for seq in [s for s in durable if s <= last_seq]:
        del durable[seq]
    if pending:
        start = (last_seq, last_hash) if last_seq else (0, "0" * 64)
        chain = verify_chain(pending, key.public_key(), DEVICE, start=start)
        if not chain.ok:
            report.chain_failures += 1
            report.problems.append(f"chain: {chain.failure}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    started = time.monotonic()
    report = run_harness(args.kills, args.dir)
    result = {
        "kills": report.kills,
        "lost": report.lost,
        "duplicated": report.duplicated,
        "chain_failures": report.chain_failures,
        "spurious_gaps": report.spurious_gaps,
        "reported_durable": report.reported_durable,
        "acknowledged": report.acknowledged,
        "lock_waits": report.lock_waits,
        "kills_while_opening": report.kills_while_opening,
        "seconds": round(time.monotonic() - started, 1),
        "problems": report.problems[:5],
    }
    print(json.dumps(result), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
