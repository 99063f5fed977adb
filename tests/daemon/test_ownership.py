"""Root at the device (``sudo qatysu ack``, ``export``, ``upload`` with the agent
stopped) leaves the buffer's files to the service user, and a daemon that finds a
file it may not open says so in one line instead of a traceback systemd loops on."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import load_config
from agent.protocol import build_receipt
from agent.records.store import open_store
from tests.daemon.support import REPO, Device, LivePortal, make_device

AGENT = 65534  # the service user stand-in: any uid but root's

# `qatysu run` as the agent's uid. The interpreter lives under /root (mode 0700)
# here, so setpriv cannot exec it as another user: the child loads the CLI and
# the daemon's modules as root, drops to the uid with os.setuid, then runs main().
AS_AGENT = """
import os, sys
import encodings.ascii, encodings.latin_1, encodings.idna
import agent.buffer.buffer, agent.cli, agent.daemon, agent.daemon.daemon, agent.records.store
uid = int(sys.argv[1])
os.setgroups([])
os.setgid(uid)
os.setuid(uid)
sys.exit(agent.cli.main(["--config", sys.argv[2], "run"]))
"""


@pytest.fixture(autouse=True)
def _as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the bug is root writing into the service user's folder")


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, uid, gid, follow_symlinks=False)


def _foreign(root: Path) -> list[str]:
    """Every file or folder under ``root`` not owned by the agent's uid and gid."""
    return [
        f"{p.relative_to(root)} {p.lstat().st_uid}:{p.lstat().st_gid}"
        for p in [root, *root.rglob("*")]
        if (p.lstat().st_uid, p.lstat().st_gid) != (AGENT, AGENT)
    ]


def _write(device: Device, n: int) -> list[dict[str, object]]:
    store = open_store(load_config(device.config_path))
    try:
        data = {"pending": 0, "readers": {}, "uptime_s": 0}
        return [store.write("heartbeat", data) for _ in range(n)]
    finally:
        store.close()


def _qatysu(capsys: pytest.CaptureFixture[str], device: Device, *args: str) -> str:
    code = main(["--config", str(device.config_path), *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_root_on_the_offline_paths_keeps_the_buffer_the_agents(
    tmp_path: Path, portal: LivePortal, capsys: pytest.CaptureFixture[str]
) -> None:
    device = make_device(tmp_path / "dev", portal)
    state = device.root / "state"
    state.mkdir(exist_ok=True)
    _chown_tree(state, AGENT, AGENT)  # what install.sh leaves

    _write(device, 3)  # the first open makes buffer/, segments/, lock, state.json
    assert _foreign(state) == []

    uploaded = json.loads(_qatysu(capsys, device, "upload", "--json"))
    assert uploaded["error"] is None and uploaded["pending"] == 0
    assert _foreign(state) == []  # state.json rewritten, segments deleted

    records = _write(device, 70)  # past a segment roll (64 records a segment)
    usb = tmp_path / "usb"
    usb.mkdir()
    exported = json.loads(_qatysu(capsys, device, "export", str(usb), "--json"))
    assert exported["last_seq"] == records[-1]["seq"]
    assert _foreign(state) == []

    receipt = tmp_path / "receipt.json"
    signed = build_receipt(
        portal.portal.key,
        device=device.device_id,
        seq=exported["last_seq"],
        record_hash=str(records[-1]["hash"]),
        server_ms=1,
    )
    receipt.write_text(json.dumps(signed))
    acked = json.loads(_qatysu(capsys, device, "ack", str(receipt), "--json"))
    assert acked["last_ack_seq"] == exported["last_seq"]
    assert _foreign(state) == []


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder the agent's uid can reach (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="qown", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_root_owned_state_file_is_one_line_naming_the_fix(
    open_dir: Path, portal: LivePortal
) -> None:
    device = make_device(open_dir, portal)
    _write(device, 1)
    state = open_dir / "state"
    _chown_tree(state, AGENT, AGENT)
    state_json = state / "buffer" / "state.json"
    os.chown(state_json, 0, 0)  # what `sudo qatysu ack` used to leave
    state_json.chmod(0o600)
    environ = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    environ.update(GPIOZERO_PIN_FACTORY="mock", HOME=str(open_dir))
    result = subprocess.run(
        [sys.executable, "-c", AS_AGENT, str(AGENT), str(device.config_path)],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        user = pwd.getpwuid(AGENT).pw_name
    except KeyError:
        user = str(AGENT)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"qatysu: error: {state_json}: permission denied")
    assert f"sudo chown -R {user}: {state}" in lines[0]
    assert result.returncode == 2  # systemd does not restart into it every 5 s
