"""Disk full and quota: the append fails loudly and every stored record stays."""

from __future__ import annotations

import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import BufferConfig
from agent.exceptions import BufferFullError
from tests.buffer.conftest import Device


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs; needs root (CAP_SYS_ADMIN)."""
    if os.geteuid() != 0:
        pytest.skip("disk-full test needs root to mount a small tmpfs (not running as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    """Fill the file system to the last byte (unbuffered writes, pages then bytes)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 1):
            while True:
                try:
                    if os.write(fd, b"\0" * size) < size:
                        break
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)


def _files(device: Device) -> dict[str, bytes]:
    root = device.state_dir / "buffer"
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_disk_full_fails_loudly_and_keeps_every_record(small_disk: Path) -> None:
    device = Device(small_disk / "state")
    device.open()
    written = device.write(100)
    filler = small_disk / "filler"
    _fill(filler)
    # The segment's last page may still hold a few records; then appends fail.
    with pytest.raises(BufferFullError, match="disk full"):
        for _ in range(100):
            written += device.write(1)
    before = _files(device)
    for _ in range(3):  # each failure leaves the files exactly as they were
        with pytest.raises(BufferFullError, match="disk full"):
            device.write(1)
        assert _files(device) == before
    assert device.buffer is not None
    assert device.buffer.next_seq == len(written) + 1
    buffer = device.reopen()
    assert buffer.pending() == written
    filler.unlink()
    more = device.write(100)  # through a segment roll
    buffer = device.reopen()
    assert buffer.pending() == written + more
    device.verify(buffer.pending())
    device.close()


def test_disk_full_during_a_segment_roll(small_disk: Path) -> None:
    device = Device(small_disk / "state")
    device.open()
    written = device.write(64)  # the next append starts a segment
    _fill(small_disk / "filler")
    with pytest.raises(BufferFullError, match="disk full"):
        device.write(1)
    buffer = device.reopen()
    assert buffer.pending() == written
    assert buffer.lost_ranges == []
    assert [p.name for p in device.segment_files()] == ["seg-000000000001.log"]
    device.close()


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """RAM-backed when available: the quota test makes ~1,800 fsync'd appends."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm) as name:
        yield Path(name)


def test_quota_refuses_appends_and_keeps_every_record(fast_dir: Path) -> None:
    device = Device(fast_dir, BufferConfig(segment_records=64, quota_mb=1))
    buffer = device.open()
    written = []
    assert not buffer.quota_warning
    with pytest.raises(BufferFullError, match="quota"):
        while True:
            written += device.write(1)
    used, quota = buffer.usage()
    assert quota == 1024 * 1024
    assert used <= quota
    assert buffer.quota_warning
    assert len(written) > 100
    buffer = device.reopen()
    assert buffer.pending() == written
    # A receipt frees space; appends work again.
    buffer.acknowledge(device.receipt(len(written), written[-1]["hash"]))
    device.write(5)
    device.close()
