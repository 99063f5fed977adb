"""One writer at a time, and no durable record lost when the writer is killed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.buffer.buffer import RecordBuffer
from agent.buffer.status import read_status
from agent.exceptions import BufferLockedError
from bench.buffer_crash import run_harness
from tests.buffer.conftest import Device

ROOT = Path(__file__).resolve().parents[2]


def _other_process(state_dir: Path, code: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from agent.buffer.buffer import RecordBuffer
        from agent.buffer.status import read_status
        from agent.exceptions import BufferLockedError
        state_dir = Path({str(state_dir)!r})
        try:
            {code}
        except BufferLockedError as exc:
            print("LOCKED", exc)
        """
    )
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_a_second_process_cannot_open_the_buffer(device: Device) -> None:
    result = _other_process(device.state_dir, "RecordBuffer(state_dir).open()")
    lock = device.state_dir / "buffer" / "lock"
    assert result.stdout.startswith("LOCKED"), result.stderr
    assert str(lock) in result.stdout
    assert "in use by another process" in result.stdout


def test_status_is_refused_while_the_writer_runs(device: Device) -> None:
    result = _other_process(device.state_dir, "read_status(state_dir)")
    assert result.stdout.startswith("LOCKED"), result.stderr
    assert "running agent" in result.stdout


def test_the_lock_is_free_again_after_close(device: Device) -> None:
    device.write(3)
    device.close()
    result = _other_process(device.state_dir, "print(read_status(state_dir).pending_count)")
    assert result.stdout.strip() == "3", result.stderr
    with RecordBuffer(device.state_dir) as buffer:
        assert buffer.pending_count == 3


def test_a_second_open_in_the_same_process_is_refused(device: Device) -> None:
    with pytest.raises(BufferLockedError):
        RecordBuffer(device.state_dir).open()
    with pytest.raises(BufferLockedError):
        read_status(device.state_dir)


def test_crash_harness_loses_nothing(tmp_path: Path) -> None:
    report = run_harness(60, tmp_path, seed=7)
    assert report.kills == 60
    assert report.reported_durable > 60
    assert report.acknowledged > 0  # kills also landed around receipts
    assert report.problems == []
    assert report.ok
