"""``qatysu-portal import roster|schedule|confirmations FILE`` (docs/reconciliation.md)."""

from __future__ import annotations

from pathlib import Path

import click

from portal.cli.base import Context, Exit, cli
from portal.reconcile.model import ReconcileSettings
from portal.reconcile.store import KINDS, apply_import


@cli.command("import")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--allow-long",
    is_flag=True,
    help="Admit schedule rows with lessons longer than lesson_max_min (180 min); "
    "their lessons are never verified (implausible_schedule).",
)
@click.pass_obj
def import_command(ctx: Context, kind: str, file: Path, allow_long: bool) -> int:
    """Load a roster, schedule or confirmations CSV (UTF-8, `,` or `;`).

    The whole file is checked first: a bad row is reported as FILE:LINE:COLUMN
    and nothing from the file is stored. Importing the same file again changes
    nothing; a changed row keeps its earlier versions (`qatysu-portal history`).
    """
    if allow_long and kind != "schedule":
        raise Exit("--allow-long applies to schedule imports only", 2)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise Exit(f"{file}: {exc.strerror or exc}") from exc
    portal = ctx.portal()
    outcome = apply_import(
        portal.engine,
        kind,
        data,
        str(file),
        now=portal.clock(),
        allow_long=allow_long,
        settings=ReconcileSettings.from_portal(portal.settings),
    )
    click.echo(outcome.summary(str(file)))
    return 0
