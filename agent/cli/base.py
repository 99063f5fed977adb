"""The ``qatysu`` group, its global options and the error-to-exit-code mapping."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click

from agent import __version__
from agent.exceptions import BufferPermissionError, ConfigError, ProtocolError, QatysuError

DEFAULT_CONFIG = Path("/etc/qatysu/agent.toml")


class Exit(click.ClickException):
    """A one-line failure with an explicit exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code

    def show(self, file: object = None) -> None:
        click.echo(f"qatysu: error: {self.format_message()}", err=True)


@dataclass
class Context:
    config_path: Path
    debug: bool


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="QATYSU_CONFIG",
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Agent config file (env QATYSU_CONFIG).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(__version__, prog_name="qatysu")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, debug: bool) -> None:
    """Qatysu agent: signed attendance records from a club entrance."""
    ctx.obj = Context(config_path=config_path, debug=debug)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn our errors into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    try:
        result = cli.main(args=args, prog_name="qatysu", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("qatysu: aborted", err=True)
        return 1
    except click.UsageError as exc:
        exc.show()
        return 2
    except click.ClickException as exc:
        exc.show()
        return exc.code if isinstance(exc, Exit) else exc.exit_code
    except (QatysuError, ProtocolError) as exc:
        if "--debug" in args:
            raise
        click.echo(f"qatysu: error: {exc}", err=True)
        # 2: systemd does not restart into it (RestartPreventExitStatus); a human must act.
        return 2 if isinstance(exc, (ConfigError, BufferPermissionError)) else 1
    return result if isinstance(result, int) else 0
