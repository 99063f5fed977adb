"""``qatysu run``: the daemon systemd starts."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import click

from agent.cli.base import Context, Exit, cli
from agent.cli.state import require_key, state_dir_errors
from agent.config import load_config
from agent.exceptions import HardwareError

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"  # journald adds the time

logger = logging.getLogger("agent.gpio")


@contextlib.contextmanager
def gpio_fallbacks() -> Iterator[list[str]]:
    """Collect gpiozero's PinFactoryFallback warnings as short reasons, logged at debug.

    gpiozero warns once per backend it skips, each with its site-packages path:
    four lines on any machine that is not a Pi, none of which says what to do.
    """
    from gpiozero.exc import PinFactoryFallback

    skipped: list[str] = []
    shown = warnings.showwarning

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if not issubclass(category, PinFactoryFallback):
            shown(message, category, *args, **kwargs)
            return
        reason = str(message).removeprefix("Falling back from ")
        skipped.append(reason)
        logger.debug("gpiozero skipped %s", reason)

    with warnings.catch_warnings():
        warnings.simplefilter("always", PinFactoryFallback)
        warnings.showwarning = show
        yield skipped


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
        with state_dir_errors(config, debug=ctx.debug), gpio_fallbacks() as skipped:
            try:
                return daemon.run()
            except HardwareError as exc:
                from gpiozero.exc import BadPinFactory

                if ctx.debug or not isinstance(exc.__cause__, BadPinFactory):
                    raise
                tried = "; ".join(skipped) or str(exc.__cause__)
                raise Exit(
                    f"{config.path}: doors, tamper or feedback pins are configured, but this "
                    f"machine has no GPIO gpiozero can use (tried {tried}): run the agent on "
                    "the Raspberry Pi, or remove those pins"
                ) from exc
    finally:
        root.removeHandler(handler)
