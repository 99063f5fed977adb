"""Durability from the system calls, the way storage engineers check it.

SIGKILL keeps the page cache, so a kill test cannot tell an fsync'd append from
one that is not. Here a child process (tests/buffer/durability_child.py) writes
through the real RecordBuffer under ``strace``; it writes a marker line right
after each append (and after a receipt) returns. From the trace:

1. every record reported durable was written to its segment and that file was
   fsync'd after the write and before the marker; every rename, unlink and
   mkdir before a marker had its folder fsync'd before the marker;
2. at each crash point (right after a marker, right before an fsync), crash
   states are rebuilt from the traced bytes: what was fsync'd before the point,
   plus none, all, or random prefixes (the last one torn) of what was not, and
   folder entries by the same rule for folder fsyncs.
   The real recovery opens each: every record reported durable is there intact,
   every record it keeps is one the child wrote (signed, chained), and any bytes
   it does not keep are in quarantine/. docs/buffer.md, "Crash states from a
   trace"; docs/decisions/0302.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.buffer.buffer import RecordBuffer
from agent.protocol import verify_chain
from agent.protocol.keys import public_key_from_b64
from tests.buffer.durability_child import CONFIG
from tests.support.tools import require_tool

REPO = Path(__file__).resolve().parents[2]
SYSCALLS = (
    "openat,write,pwrite64,fsync,fdatasync,rename,renameat,renameat2,"
    "unlink,unlinkat,ftruncate,mkdir,mkdirat,close"
)
RANDOM_STATES = 2  # per crash point before an fsync, beside "none" and "all"

_LINE = re.compile(r"^(\d+) +(\w+)\((.*)\) += (-?\d+)")  # strace pads pids and short calls
_FD = re.compile(r"^(\d+)$")
_HEX = re.compile(r'^"((?:\\x[0-9a-f]{2})*)"$')


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text.replace("\\x", ""))


# --- the trace as operations --------------------------------------------------------


@dataclass
class Op:
    index: int  # position in the trace
    kind: str  # data: write, truncate; names: create, mkdir, rename, unlink
    inode: int = -1
    offset: int = 0
    data: bytes = b""
    size: int = 0
    paths: tuple[str, ...] = ()
    dirs: tuple[str, ...] = ()  # folders whose fsync makes a name operation durable


@dataclass
class Trace:
    root: str
    data: dict[int, list[Op]] = field(default_factory=dict)  # per inode
    names: list[Op] = field(default_factory=list)
    file_syncs: dict[int, list[int]] = field(default_factory=dict)  # inode: indexes
    dir_syncs: dict[str, list[int]] = field(default_factory=dict)  # folder: indexes
    markers: list[tuple[int, str]] = field(default_factory=list)  # (index, line)
    writes: list[tuple[int, int, str, bytes]] = field(default_factory=list)

    def synced_after(self, syncs: list[int], start: int, end: int) -> bool:
        return any(start < i < end for i in syncs)


def parse(text: str, root: str, markers_path: str) -> Trace:
    trace = Trace(root)
    live: dict[str, int] = {root: -2}  # path: inode (-2 for a folder)
    fds: dict[tuple[str, int], tuple[int, bool, str]] = {}  # (pid, fd): inode, append, path
    offsets: dict[tuple[str, int], int] = {}
    sizes: dict[int, int] = {}
    pending: dict[str, str] = {}
    inodes = 0

    def ours(path: str) -> bool:
        return path == root or path.startswith(root + "/")

    # File descriptors are followed from openat to close here, not taken from strace's
    # -y annotations: those come from /proc/PID/fd, which a sandbox may hide or show
    # from another mount or PID namespace (CI once traced nothing but bare numbers).
    for index, raw in enumerate(text.splitlines()):
        pid = raw.split(" ", 1)[0]
        if raw.endswith("<unfinished ...>"):
            pending[pid] = raw[: -len("<unfinished ...>")]
            continue
        if " resumed>" in raw:
            raw = pending.pop(pid) + raw.split(" resumed>", 1)[1]
        match = _LINE.match(raw)
        if match is None or int(match.group(4)) < 0:
            continue  # exits, signals, failed calls
        _, name, argtext, result = match.groups()
        args = argtext.split(", ")
        strings = [_unhex(m.group(1)).decode() for a in args if (m := _HEX.match(a))]
        fd_arg = _FD.match(args[0]) if args else None
        key = (pid, int(fd_arg.group(1))) if fd_arg is not None else (pid, -1)
        if name == "openat":
            path = strings[0]
            key = (pid, int(result))
            fds.pop(key, None)
            if path == markers_path:
                fds[key] = (-3, True, path)
                continue
            if not ours(path):
                continue
            assert os.path.isabs(path), raw
            flags = args[2]
            if "O_DIRECTORY" in flags:
                fds[key] = (-2, False, path)
                continue
            if path not in live:
                assert "O_CREAT" in flags, raw
                inodes += 1
                live[path] = inodes
                sizes[inodes] = 0
                trace.names.append(
                    Op(index, "create", inodes, paths=(path,), dirs=(os.path.dirname(path),))
                )
            inode = live[path]
            fds[key] = (inode, "O_APPEND" in flags, path)
            offsets[key] = 0
            if "O_TRUNC" in flags:
                trace.data.setdefault(inode, []).append(Op(index, "truncate", inode, size=0))
                sizes[inode] = 0
        elif name == "close":
            fds.pop(key, None)
        elif name in ("write", "pwrite64") and key in fds:
            inode, append, path = fds[key]
            payload_arg = args[1]
            assert not payload_arg.endswith("..."), f"strace cut a payload short: {raw[:200]}"
            payload = _unhex(payload_arg.strip('"'))[: int(result)]
            if inode == -3:
                trace.markers.append((index, payload.decode().strip()))
                continue
            if name == "pwrite64":
                offset = int(args[3])
            else:
                offset = sizes[inode] if append else offsets[key]
                offsets[key] = offset + len(payload)
            trace.data.setdefault(inode, []).append(Op(index, "write", inode, offset, payload))
            trace.writes.append((index, inode, path, payload))
            sizes[inode] = max(sizes[inode], offset + len(payload))
        elif name == "ftruncate" and key in fds:
            inode = fds[key][0]
            trace.data.setdefault(inode, []).append(Op(index, "truncate", inode, size=int(args[1])))
            sizes[inode] = int(args[1])
        elif name in ("fsync", "fdatasync") and key in fds:
            inode, _, path = fds[key]
            if inode == -2:
                trace.dir_syncs.setdefault(path, []).append(index)
            else:
                trace.file_syncs.setdefault(inode, []).append(index)
        elif name in ("rename", "renameat", "renameat2") and len(strings) == 2:
            old, new = strings
            if ours(old) or ours(new):
                live[new] = live.pop(old)
                dirs = tuple(sorted({os.path.dirname(old), os.path.dirname(new)}))
                trace.names.append(Op(index, "rename", paths=(old, new), dirs=dirs))
        elif name in ("unlink", "unlinkat") and strings and ours(strings[0]):
            live.pop(strings[0])
            trace.names.append(
                Op(index, "unlink", paths=(strings[0],), dirs=(os.path.dirname(strings[0]),))
            )
        elif name in ("mkdir", "mkdirat") and strings and ours(strings[0]):
            live[strings[0]] = -2
            trace.names.append(
                Op(index, "mkdir", paths=(strings[0],), dirs=(os.path.dirname(strings[0]),))
            )
    return trace


# --- crash states -------------------------------------------------------------------


def crash_state(
    trace: Trace, at: int, rng: random.Random | None, everything: bool
) -> dict[str, bytes | None]:
    """The files under the state dir after a power cut right after trace line ``at``:
    ``rng`` None gives none (``everything`` False) or all of what was not yet durable."""

    def cut(ops: list[Op], durable: int) -> list[Op]:
        extra = len(ops) - durable
        if everything:
            return ops
        if rng is None or extra == 0:
            return ops[:durable]
        return ops[: durable + rng.randint(0, extra)]

    names = [op for op in trace.names if op.index < at]
    durable_names = [
        all(trace.synced_after(trace.dir_syncs.get(d, []), op.index, at) for d in op.dirs)
        for op in names
    ]
    # Folder entries: the durable ones, and a prefix of the others in order.
    undurable = [i for i, ok in enumerate(durable_names) if not ok]
    if everything:
        keep = len(undurable)
    elif rng is None:
        keep = 0
    else:
        keep = rng.randint(0, len(undurable))
    chosen = set(undurable[:keep])
    tree: dict[str, int] = {trace.root: -2}
    for i, op in enumerate(names):
        if not (durable_names[i] or i in chosen):
            continue
        parent_ok = all(os.path.dirname(p) in tree for p in op.paths[-1:])
        if op.kind in ("create", "mkdir") and parent_ok:
            tree[op.paths[0]] = op.inode if op.kind == "create" else -2
        elif op.kind == "rename" and op.paths[0] in tree and parent_ok:
            tree[op.paths[1]] = tree.pop(op.paths[0])
        elif op.kind == "unlink":
            tree.pop(op.paths[0], None)
    contents: dict[int, bytes] = {}
    for inode in {v for v in tree.values() if v >= 0}:
        ops = [op for op in trace.data.get(inode, []) if op.index < at]
        syncs = [i for i in trace.file_syncs.get(inode, []) if i < at]
        durable = sum(1 for op in ops if syncs and op.index < syncs[-1])
        applied = cut(ops, durable)
        data = bytearray()
        for n, op in enumerate(applied):
            payload = op.data
            if rng is not None and not everything and n == len(applied) - 1 and n >= durable:
                payload = payload[: rng.randint(0, len(payload))]  # a torn last write
            if op.kind == "truncate":
                del data[op.size :]
            else:
                end = op.offset + len(payload)
                data.extend(b"\0" * max(0, end - len(data)))
                data[op.offset : end] = payload
        contents[inode] = bytes(data)
    return {path: (None if inode == -2 else contents[inode]) for path, inode in tree.items()}


def materialise(files: dict[str, bytes | None], root: str, into: Path) -> None:
    for path in sorted(files, key=lambda p: p.count("/")):
        target = into / os.path.relpath(path, root)
        if files[path] is None:
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.write_bytes(files[path])


# --- the test -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trace, Path]:
    strace = require_tool("strace")
    base = tmp_path_factory.mktemp("trace")
    state = base / "state"
    state.mkdir()
    markers = base / "markers.log"
    out = base / "TRACE"
    subprocess.run(
        [
            strace,
            "-f",
            "-qq",
            "-e",
            f"trace={SYSCALLS}",
            "-xx",
            "-s",
            "65536",
            "-o",
            str(out),
            sys.executable,
            "-m",
            "tests.buffer.durability_child",
            str(state),
            str(markers),
        ],
        cwd=REPO,
        check=True,
        timeout=120,
    )
    trace = parse(out.read_text(), str(state), str(markers))
    reported = markers.read_text(encoding="ascii").splitlines()
    head = "\n".join(out.read_text().splitlines()[:5])
    assert [line for _, line in trace.markers] == reported, (
        f"the trace holds {len(trace.markers)} of the {len(reported)} marker lines the child "
        f"wrote; its first lines:\n{head}"
    )
    return trace, base


def test_each_durable_record_was_fsyncd_before_it_was_reported(
    traced: tuple[Trace, Path],
) -> None:
    trace, _ = traced
    appended = [(i, line.split()) for i, line in trace.markers if line.startswith("K ")]
    assert len(appended) == 150, "the child reported every append"
    for at, (_, seq, digest) in appended:
        needle = b'"hash":"%s"' % digest.encode()
        written = [
            (i, inode, path)
            for i, inode, path, payload in trace.writes
            if i < at and needle in payload
        ]
        assert written, f"record {seq}: never written before it was reported durable"
        index, inode, path = written[0]
        assert re.search(r"/segments/seg-\d{12}\.log$", path), f"record {seq} went to {path}"
        assert trace.synced_after(trace.file_syncs.get(inode, []), index, at), (
            f"record {seq}: {os.path.basename(path)} not fsync'd between its write and the "
            "moment it was reported durable"
        )
    for at, line in trace.markers:
        for op in trace.names:
            if op.index > at or op.kind == "create":
                continue  # a created file becomes durable by the rename that names it
            for folder in op.dirs:
                assert trace.synced_after(trace.dir_syncs.get(folder, []), op.index, at), (
                    f"{op.kind} {op.paths} not made durable (fsync of {folder}) before "
                    f"{line.split()[0]} {line.split()[1]}"
                )
    kinds = {op.kind for op in trace.names}
    assert {"mkdir", "rename", "unlink"} <= kinds, "a roll, a state.json and a freed segment"


def test_every_crash_state_recovers_what_was_reported_durable(
    traced: tuple[Trace, Path], tmp_path: Path
) -> None:
    trace, _ = traced
    _, public_key, device = trace.markers[0][1].split()
    key = public_key_from_b64(public_key)
    every_hash = {
        int(line.split()[1]): line.split()[2] for _, line in trace.markers if line[0] == "K"
    }
    rng = random.Random(17)
    durable: dict[int, str] = {}
    acked = 0
    states = repaired = 0
    # Crash right after each marker, and right before each fsync (where bytes
    # or names are not yet durable: mid-append, mid-roll, mid-receipt).
    syncs = [i for found in (*trace.file_syncs.values(), *trace.dir_syncs.values()) for i in found]
    points = sorted(
        [(at + 1, "marker") for at, _ in trace.markers[1:]] + [(i, "sync") for i in syncs]
    )
    markers = iter(trace.markers[1:])
    upcoming = next(markers, None)
    for at, kind in points:
        while upcoming is not None and upcoming[0] < at:
            fields = upcoming[1].split()
            if fields[0] == "K":
                durable[int(fields[1])] = fields[2]
            else:
                acked = int(fields[1])
            upcoming = next(markers, None)
        variants = ["none", "all"] + (["random"] * RANDOM_STATES if kind == "sync" else [])
        for variant in variants:
            files = crash_state(trace, at, rng if variant == "random" else None, variant == "all")
            where = tmp_path / f"crash-{states}"
            states += 1
            materialise(files, trace.root, where)
            before = {p: p.read_bytes() for p in (where / "buffer" / "segments").glob("seg-*.log")}
            context = f"crash at trace line {at + 1} ({kind}, {variant}), {len(durable)} durable"
            buffer = RecordBuffer(where, CONFIG).open()
            try:
                last_ack = buffer.last_ack[0]
                assert last_ack >= acked, f"{context}: the receipt applied is forgotten"
                for seq, digest in durable.items():
                    if seq > last_ack:
                        record = buffer.get(seq)
                        assert record is not None, f"{context}: durable record {seq} lost"
                        assert record["hash"] == digest, f"{context}: record {seq} changed"
                kept = buffer.pending()
                for record in kept:
                    assert record["hash"] == every_hash.get(record["seq"]), context
                start = buffer.last_ack if last_ack else None
                report = verify_chain(kept, key, device, start=start)
                assert report.ok, f"{context}: {report.failure}"
            finally:
                buffer.close()
            quarantined = [p.read_bytes() for p in (where / "buffer" / "quarantine").iterdir()]
            for path, data in before.items():
                now = path.read_bytes() if path.exists() else None
                if now == data or not data:
                    continue
                lost = data[len(now) :] if now is not None and data.startswith(now) else data
                assert lost in quarantined, f"{context}: {path.name} lost bytes unquarantined"
                repaired += 1
            shutil.rmtree(where)
    assert states >= 4 * 150
    assert repaired > 0, "no crash state had a torn segment for recovery to cut"
