"""`qatysu status`: from the running daemon over the socket, or from the files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.buffer.buffer import RecordBuffer
from agent.clock import ManualClock
from agent.records.chain import ChainWriter
from tests.cli.conftest import Run, Site
from tests.cli.daemon_stub import daemon_side


def write_records(site: Site, n: int) -> RecordBuffer:
    clock = ManualClock()
    buffer = RecordBuffer(site.state_dir, clock=clock).open()
    writer = ChainWriter(buffer, Ed25519PrivateKey.generate(), "dev-1", clock)
    for i in range(n):
        writer.write("badge", {"reader": "entrance", "uid": f"04{i:06X}", "uid_len": 4})
    return buffer


def test_status_from_files_when_the_daemon_is_stopped(site: Site, run: Run) -> None:
    buffer = write_records(site, 3)
    head = buffer.head
    buffer.close()
    result = run("--config", site.config, "status", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["running"] is False
    assert data["pending"] == 3 and data["head_seq"] == 3 and data["head_hash"] == head[1]
    assert data["last_ack_seq"] == 0
    assert data["readers"] == {"entrance": "unknown"}
    plain = run("--config", site.config, "status")
    assert plain.code == 0
    assert "not running" in plain.out and "pending records" in plain.out


def test_status_of_an_empty_state_dir(site: Site, run: Run) -> None:
    data = run("--config", site.config, "status", "--json").json()
    assert data["pending"] == 0 and data["head_seq"] == 0 and data["running"] is False


def test_status_asks_the_running_daemon_and_never_the_files(site: Site, run: Run) -> None:
    buffer = write_records(site, 2)  # a writer holds the buffer, as the daemon does
    try:
        with daemon_side(site.socket) as daemon:
            result = run("--config", site.config, "status", "--json")
            assert result.code == 0, result.err
            data = result.json()
            assert {k: data[k] for k in daemon.status} == daemon.status
            plain = run("--config", site.config, "status")
            assert "running (pid 4242)" in plain.out
            # The daemon sends an age, not a time (once shown as "20789 days ago").
            assert re.search(r"^oldest pending +2 min ago$", plain.out, re.M)
            assert re.search(r"^reader entrance +ok$", plain.out, re.M)
    finally:
        buffer.close()


def test_status_locked_buffer_without_a_daemon_socket_is_a_failure(site: Site, run: Run) -> None:
    buffer = write_records(site, 1)
    try:
        result = run("--config", site.config, "status")
    finally:
        buffer.close()
    assert result.code == 1
    assert f"{site.state_dir}: the buffer is locked by a running agent, but {site.socket}" in (
        result.err
    )


def test_status_daemon_error_answer_is_one_line(site: Site, run: Run) -> None:
    with daemon_side(site.socket) as daemon:
        daemon.status = {"error": "status not ready"}  # an error answer
        result = run("--config", site.config, "status")
    assert result.code == 1
    assert result.err.count("\n") == 1 and "status not ready" in result.err


def test_status_invalid_config_is_exit_2(site: Site, run: Run) -> None:
    site.config.write_text("[devize]\n")
    result = run("--config", site.config, "status")
    assert result.code == 2 and "unknown section 'devize' (did you mean 'device'?)" in result.err


def test_status_json_has_the_same_keys_running_and_stopped(site: Site, run: Run) -> None:
    buffer = write_records(site, 2)
    written_ms = buffer.oldest_pending_wall_ms
    buffer.close()
    assert written_ms is not None
    stopped = run("--config", site.config, "status", "--json").json()
    # An age, like the daemon's: now minus the record's wall time (within a minute).
    assert abs(stopped["oldest_pending_ms"] + written_ms - time.time() * 1000) < 60_000
    buffer = RecordBuffer(site.state_dir).open()
    try:
        with daemon_side(site.socket):
            running = run("--config", site.config, "status", "--json").json()
    finally:
        buffer.close()
    assert running["running"] is True and stopped["running"] is False
    assert sorted(running) == sorted(stopped)


def test_status_as_a_login_outside_the_agents_group_says_what_to_do(run: Run) -> None:
    """Run as a real unprivileged user (setpriv to nobody): the state dir is 0700."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        if os.environ.get("CI"):
            raise AssertionError("this test needs root and setpriv (util-linux) under CI")
        pytest.skip("needs root and setpriv to run the CLI as another user")
    root = Path(tempfile.mkdtemp(prefix="qatysu-status-", dir="/tmp"))
    try:
        root.chmod(0o755)
        config, state = root / "agent.toml", root / "state"
        made = run("--config", config, "init", "--profile", "demo-simulated", "--state-dir", state)
        assert made.code == 0, made.err
        config.chmod(0o644)
        state.chmod(0o700)
        answer = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
             sys.executable, "-m", "agent", "--config", str(config), "status"],
            capture_output=True, text=True, timeout=60, cwd=root,
        )  # fmt: skip
        assert answer.returncode == 1, answer.stderr
        assert answer.stderr.strip() == (
            f"qatysu: error: {state}: permission denied: run 'sudo qatysu status', or join the "
            "qatysu group (scripts/install.sh --admin USER) to reach the running agent"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
