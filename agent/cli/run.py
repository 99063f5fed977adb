"""``qatysu run``: the daemon systemd starts."""

from __future__ import annotations

import logging
import sys

import click

from agent.cli.base import Context, cli
from agent.cli.state import require_key, state_dir_errors
from agent.config import load_config

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"  # journald adds the time


@cli.command("run")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="What goes to the journal.",
)
@click.pass_obj
def run_command(ctx: Context, log_level: str) -> int:
    """Run the daemon: read badges and doors, record, upload (refuses before enrollment)."""
    from agent.daemon import Daemon

    config = load_config(ctx.config_path)
    daemon = Daemon(config)
    require_key(config)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(log_level.upper())
    if log_level != "debug":
        # httpx logs every request at INFO: one line per tap would flood the journal.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        with state_dir_errors(config, debug=ctx.debug):
            return daemon.run()
    finally:
        root.removeHandler(handler)
