"""``qatysu status``: from the running daemon, or from the buffer files under a shared lock."""

from __future__ import annotations

import time
from typing import Any

import click

from agent.buffer.status import read_status
from agent.cli.base import Context, Exit, cli
from agent.cli.output import echo_json, table
from agent.clock import kernel_clock_synced
from agent.config import AgentConfig, load_config
from agent.control.client import ControlClient, daemon_running
from agent.exceptions import BufferLockedError, ControlError, RecordBufferError

# One answer whether the agent runs or not: the daemon's status keys (docs/daemon.md),
# ``oldest_pending_ms`` being the age of the oldest unacknowledged record, not a time.
STATUS_KEYS = (
    "running",
    "pid",
    "device_id",
    "pending",
    "oldest_pending_ms",
    "head_seq",
    "head_hash",
    "last_ack_seq",
    "last_receipt_server_ms",
    "last_upload_ms",
    "last_upload_error",
    "clock_synced",
    "readers",
    "doors",
    "tamper",
    "uptime_s",
    "healthy",
    "needs_recovery",
    "lost_ranges",
)


def status_from_files(config: AgentConfig) -> dict[str, Any]:
    """The daemon's status answer, as far as the files can tell (no daemon running)."""
    try:
        buffer = read_status(config.device.state_dir, config.buffer)
    except BufferLockedError as exc:
        raise Exit(
            f"{config.device.state_dir}: the buffer is locked by a running agent, but "
            f"{config.device.control_socket} does not answer ({exc})"
        ) from exc
    except PermissionError as exc:
        # The state dir is the agent's own (0700): a login outside its group sees nothing.
        raise Exit(
            f"{config.device.state_dir}: permission denied: run 'sudo qatysu status', or join "
            "the qatysu group (scripts/install.sh --admin USER) to reach the running agent"
        ) from exc
    except (RecordBufferError, OSError) as exc:
        raise Exit(f"{config.device.state_dir}: cannot read the buffer: {exc}") from exc
    oldest = buffer.oldest_pending_wall_ms
    now_ms = time.time_ns() // 1_000_000
    return {
        "running": False,
        "pid": None,
        "device_id": config.portal.device_id,
        "pending": buffer.pending_count,
        "oldest_pending_ms": None if oldest is None else max(0, now_ms - oldest),
        "head_seq": buffer.head[0],
        "head_hash": buffer.head[1],
        "last_ack_seq": buffer.last_ack[0],
        "last_receipt_server_ms": None,
        "last_upload_ms": None,
        "last_upload_error": None,
        "clock_synced": kernel_clock_synced(),
        "readers": {r.name: "unknown" for r in config.readers},
        "doors": {d.name: "unknown" for d in config.doors},
        "tamper": {t.name: "unknown" for t in config.tamper},
        "uptime_s": None,
        "healthy": None,
        "needs_recovery": list(buffer.needs_recovery),
        "lost_ranges": [[r.first_seq, r.last_seq] for r in buffer.lost_ranges],
    }


def gather_status(config: AgentConfig) -> dict[str, Any]:
    """Ask the daemon when it answers; read the files otherwise (never both)."""
    socket_path = config.device.control_socket
    if daemon_running(socket_path):
        try:
            answer = ControlClient(socket_path).request("status")
        except ControlError as exc:
            raise Exit(str(exc)) from exc
        answer.setdefault("running", True)
        return {key: answer.get(key) for key in STATUS_KEYS} | answer
    return status_from_files(config)


def _age(ms: Any, now_ms: int) -> str:
    """How long ago the wall time ``ms`` was."""
    if not isinstance(ms, int):
        return "-"
    return _ago(now_ms - ms)


def _ago(age_ms: Any) -> str:
    if not isinstance(age_ms, int):
        return "-"
    seconds = max(0, age_ms // 1000)
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
@click.pass_obj
def status_command(obj: Context, as_json: bool) -> None:
    """Is the agent running, what waits for upload, chain head, clock, readers.

    Asks the running agent over its control socket; when it is not running,
    reads the buffer files under a shared lock (without changing them).
    """
    config = load_config(obj.config_path)
    status = gather_status(config)
    if as_json:
        echo_json(status)
        return
    now_ms = int(time.time() * 1000)
    running = f"running (pid {status.get('pid')})" if status.get("running") else "not running"
    synced = status.get("clock_synced")
    rows: list[tuple[str, Any]] = [
        ("agent", running),
        ("device", status.get("device_id") or "not enrolled"),
        ("pending records", status.get("pending")),
        ("oldest pending", _ago(status.get("oldest_pending_ms"))),
        ("chain head", f"seq {status.get('head_seq')} {str(status.get('head_hash') or '')[:16]}"),
        ("last acknowledged", f"seq {status.get('last_ack_seq')}"),
        ("last receipt", _age(status.get("last_receipt_server_ms"), now_ms)),
        ("last upload", _age(status.get("last_upload_ms"), now_ms)),
        (
            "clock",
            "synchronised"
            if synced is True
            else "NOT synchronised"
            if synced is False
            else "unknown",
        ),
    ]
    if status.get("last_upload_error"):
        rows.append(("upload error", status["last_upload_error"]))
    for name, state in (status.get("readers") or {}).items():
        rows.append((f"reader {name}", state))
    for name, state in (status.get("doors") or {}).items():
        rows.append((f"door {name}", state))
    for repair in status.get("needs_recovery") or []:
        rows.append(("repair at next start", repair))
    table("Qatysu agent", ["", ""], rows)
