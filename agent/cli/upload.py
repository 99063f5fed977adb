"""``qatysu upload``: push pending records now, through the daemon when it runs."""

from __future__ import annotations

import json
import threading
from typing import Any

import click

from agent.cli.base import Context, Exit, cli
from agent.cli.state import require_key, state_dir_errors
from agent.config import load_config
from agent.control import ControlClient, daemon_running
from agent.daemon.daemon import check_enrolled
from agent.uplink.uploader import Uploader

PROGRESS_EVERY_S = 1.0


@cli.command("upload")
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=300.0,
    show_default=True,
    help="Give up waiting for the round after this many seconds.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.pass_obj
def upload_command(ctx: Context, wait_s: float, as_json: bool) -> int:
    """Upload pending records to the portal now, printing progress.

    While 'qatysu run' runs, the daemon does the upload (its control socket);
    otherwise this command opens the buffer itself. Exit 1 if the portal could
    not take everything.
    """
    config = load_config(ctx.config_path)
    check_enrolled(config)
    socket_path = config.device.control_socket
    if daemon_running(socket_path):
        client = ControlClient(socket_path)
        pending = lambda: int(client.request("status")["pending"])  # noqa: E731
        result = _with_progress(lambda: client.request("upload", wait_s=wait_s), pending, as_json)
    else:
        from agent.daemon.uplink_wiring import make_uploader
        from agent.records.store import open_store

        require_key(config)
        with state_dir_errors(config, debug=ctx.debug):
            store = open_store(config)
            uploader, portal = make_uploader(config, store, store.clock)
            try:
                result = _direct_round(uploader, wait_s, as_json)
            finally:
                uploader.close()
                portal.close()
                store.close()
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"uploaded {result['uploaded']}, {result['pending']} pending")
    if result["error"]:
        raise Exit(f"upload incomplete: {result['error']}")
    return 0


def _direct_round(uploader: Uploader, wait_s: float, quiet: bool) -> dict[str, Any]:
    def progress(uploaded: int, pending: int) -> None:
        if not quiet:
            click.echo(f"... {uploaded} uploaded, {pending} pending", err=True)

    until = uploader.clock.monotonic() + wait_s
    result = uploader.run_once(force=True, until=until, progress=progress)
    return {"uploaded": result.uploaded, "pending": result.pending, "error": result.error}


def _with_progress(round_: Any, pending: Any, quiet: bool) -> dict[str, Any]:
    """Run ``round_`` while a thread prints the pending count when it changes."""
    done = threading.Event()

    def report() -> None:
        last = None
        while not done.wait(PROGRESS_EVERY_S):
            try:
                now = pending()
            except Exception:
                return  # progress is a nicety; the round's own answer decides
            if now != last:
                click.echo(f"... {now} pending", err=True)
                last = now

    thread = None
    if not quiet:
        thread = threading.Thread(target=report, daemon=True)
        thread.start()
    try:
        result: dict[str, Any] = round_()
    finally:
        done.set()
        if thread is not None:
            thread.join(2)
    return result
