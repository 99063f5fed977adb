"""The ``qatysu-portal`` group, its global options and the error-to-exit-code mapping."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from portal import __version__
from portal.exceptions import ImportFileError, NotFoundError, PortalConfigError, PortalError
from portal.settings import DB_FILE, Settings
from portal.state import Portal, open_portal

__all__ = ["Context", "Exit", "cli", "main"]


class Exit(click.ClickException):
    """A one-line failure with an explicit exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code

    def show(self, file: object = None) -> None:
        click.echo(f"qatysu-portal: error: {self.format_message()}", err=True)


@dataclass
class Context:
    data_dir: Path | None
    db_url: str | None
    debug: bool
    _portal: Portal | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        return Settings.from_env(data_dir=self.data_dir, db_url=self.db_url)

    def portal(self, *, read_only: bool = False) -> Portal:
        """The opened store, migrated to the newest schema (once per command).

        ``read_only`` commands (lists) refuse a data dir with no SQLite database
        rather than create an empty one where the operator happens to stand.
        """
        if self._portal is None:
            settings = self.settings()
            database = settings.data_dir / DB_FILE
            if read_only and settings.is_sqlite and not database.exists():
                raise Exit(
                    f"no portal database at {database}; pass --data-dir or set "
                    "QATYSU_PORTAL_DATA_DIR to the portal's data directory",
                    2,
                )
            try:
                self._portal = open_portal(settings)
            except OSError as exc:
                raise Exit(_disk_line(exc, settings)) from exc
            except SQLAlchemyError as exc:
                raise Exit(_database_line(exc, settings)) from exc
        return self._portal

    def close(self) -> None:
        if self._portal is not None:
            self._portal.close()
            self._portal = None


def _disk_line(exc: OSError, settings: Settings) -> str:
    """A data dir that cannot be made or written, as one line naming it."""
    where = exc.filename or settings.data_dir
    return f"{where}: {exc.strerror or exc}: the data directory must be a writable directory"


def _database_line(exc: SQLAlchemyError, settings: Settings) -> str:
    """A database that cannot be opened, as one line: the driver's first line, no URL
    password, no "Background on this error" link."""
    reason = first_line(exc)
    if settings.is_sqlite:
        database = make_url(settings.db_url).database or str(settings.data_dir / DB_FILE)
        folder = Path(database).parent
        if not os.access(folder, os.W_OK):
            reason += f"; {folder} is not writable (a read-only disk?)"
        return f"{database}: cannot open the database: {reason}"
    url = make_url(settings.db_url).render_as_string(hide_password=True)
    return f"database {url}: cannot connect: {reason}"


def first_line(exc: BaseException) -> str:
    """An error's message on one line (a database driver's own, when it has one)."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="QATYSU_PORTAL_DATA_DIR",
    default=None,
    help="Where the key, session secret and SQLite database live "
    "(env QATYSU_PORTAL_DATA_DIR; default ./portal-data).",
)
@click.option(
    "--db",
    "db_url",
    envvar="QATYSU_PORTAL_DB",
    metavar="URL",
    help="Database URL (env QATYSU_PORTAL_DB); default SQLite in the data dir, "
    "or postgresql://USER@HOST/DB.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(__version__, prog_name="qatysu-portal")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, db_url: str | None, debug: bool) -> None:
    """Qatysu portal: enrollment, verified ingest and reconciliation for the city."""
    context = Context(data_dir=data_dir, db_url=db_url, debug=debug)
    ctx.obj = context
    ctx.call_on_close(context.close)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn our errors into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    try:
        result = cli.main(args=args, prog_name="qatysu-portal", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("qatysu-portal: aborted", err=True)
        return 1
    except click.UsageError as exc:
        exc.show()
        return 2
    except click.ClickException as exc:
        exc.show()
        return exc.code if isinstance(exc, Exit) else exc.exit_code
    except PortalError as exc:
        if "--debug" in args:
            raise
        click.echo(f"qatysu-portal: error: {exc}", err=True)
        # An unknown id named on the command line is invalid input, like a bad one;
        # so is a CSV row the import refuses (it names FILE:LINE:COLUMN).
        return 2 if isinstance(exc, PortalConfigError | NotFoundError | ImportFileError) else 1
    except Exception as exc:  # the database or the disk: still one line
        if "--debug" in args:
            raise
        click.echo(f"qatysu-portal: error: {type(exc).__name__}: {first_line(exc)}", err=True)
        return 1
    return result if isinstance(result, int) else 0
