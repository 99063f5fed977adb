"""``qatysu doctor``: everything that must hold for the agent to work, with what to do."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

import click

from agent.buffer.status import read_status
from agent.cli.base import Context, cli
from agent.cli.output import busy, echo_json, on_terminal, table
from agent.clock import kernel_clock_synced
from agent.config import AgentConfig, load_config
from agent.control.client import ControlClient, daemon_running
from agent.doctor import Facts, run_checks
from agent.exceptions import ControlError, QatysuError, RecordBufferError


def probe_readers(config: AgentConfig) -> dict[str, tuple[bool, str]]:
    """Ask each reader whether it answers (VersionReg for an MFRC522); daemon stopped only."""
    from agent.readers.registry import create_reader

    results: dict[str, tuple[bool, str]] = {}
    for cfg in config.readers:
        try:
            reader = create_reader(cfg)
        except QatysuError as exc:
            results[cfg.name] = (False, f"{cfg.name}: {exc}")
            continue
        try:
            results[cfg.name] = (True, reader.probe())
        except (QatysuError, OSError) as exc:
            results[cfg.name] = (False, f"{cfg.name}: {exc}")
        # Foreign libraries fail in their own ways on import or open (rpi-lgpio:
        # RuntimeError off a Pi or under a /proc without the board's revision);
        # doctor reports each as the reader's failure, never as a traceback.
        except Exception as exc:
            results[cfg.name] = (False, f"{cfg.name}: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):
                reader.close()
    return results


def state_dir_problem(path: Path) -> str:
    """Why nothing can be written at ``path``, "" when it can (ownership: the other checks)."""
    if os.statvfs(path).f_flag & os.ST_RDONLY:
        return "on a read-only file system"
    return ""


def gather_facts(config: AgentConfig, *, offline: bool, probe: bool) -> Facts:
    """Measure what lies outside the root folder: clock, disk, portal, readers, daemon."""
    from agent.cli.config_cmd import url_problem

    facts: dict[str, Any] = {"clock_synced": kernel_clock_synced()}
    state_dir = config.device.state_dir
    existing = next((p for p in (state_dir, *state_dir.parents) if p.exists()), None)
    if existing is not None:
        facts["disk_free_bytes"] = shutil.disk_usage(existing).free
        facts["state_dir_problem"] = state_dir_problem(existing)
    socket_path = config.device.control_socket
    status: dict[str, Any] | None = None
    if daemon_running(socket_path):
        try:
            status = ControlClient(socket_path).request("status")
        except ControlError as exc:
            facts["daemon_problem"] = str(exc)
    if status is not None:
        facts["daemon"] = status
        facts["readers"] = {
            name: (state == "ok", f"{name}: {state} (reported by the running agent)")
            for name, state in (status.get("readers") or {}).items()
        }
    else:
        try:
            facts["buffer"] = read_status(state_dir, config.buffer)
        except (RecordBufferError, OSError) as exc:
            facts["buffer_problem"] = f"{state_dir}: {exc}"
        if probe:
            facts["readers"] = probe_readers(config)
    if not offline and config.portal.url:
        facts["portal_problem"] = url_problem(config.portal.url) or ""
    return Facts(**facts)


_MARK = {"pass": "ok", "warn": "WARN", "fail": "FAIL"}


@cli.command("doctor")
@click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path("/"),
    show_default=True,
    help="System root to inspect (e.g. a mounted SD card).",
)
@click.option("--user", default="qatysu", show_default=True, help="The agent's service user.")
@click.option("--offline", is_flag=True, help="Do not contact the portal.")
@click.option("--no-probe", is_flag=True, help="Do not open the readers.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as one JSON array.")
@click.pass_obj
def doctor_command(
    obj: Context, root: Path, user: str, offline: bool, no_probe: bool, as_json: bool
) -> int:
    """Check the device end to end and say what to fix.

    SPI and UART enabled in the boot config, /dev/spidev*, /dev/gpiochip*
    and serial ports present and accessible by the service user, its groups
    (spi, gpio, dialout), clock sync, free disk and buffer quota, key file
    permissions, portal reachable and its key pinned, each reader answering,
    the daemon running and its last upload. Exit 1 when any check fails.
    """
    config = load_config(obj.config_path)
    with busy("checking the readers, the portal and the daemon..."):
        facts = gather_facts(config, offline=offline, probe=not no_probe)
    checks = run_checks(config, root, facts, user=user)
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        echo_json([c.as_dict() for c in checks])
    elif on_terminal():
        table(
            "qatysu doctor",
            ["", "check", "detail", "what to do"],
            [(_MARK[c.status], c.name, c.detail, c.fix) for c in checks],
        )
    else:
        for c in checks:
            fix = f" -> {c.fix}" if c.fix and c.status != "pass" else ""
            click.echo(f"{_MARK[c.status]:4}  {c.name}: {c.detail}{fix}")
    if not as_json:
        fails = sum(c.status == "fail" for c in checks)
        warns = sum(c.status == "warn" for c in checks)
        click.echo(f"{fails} failed, {warns} warning(s), {len(checks) - fails - warns} passed")
    return 1 if failed else 0
