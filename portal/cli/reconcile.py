"""``qatysu-portal reconcile``: presence against confirmations (docs/reconciliation.md)."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path

import click

from portal.cards.registry import card_book
from portal.cli.base import Context, Exit, cli
from portal.reconcile.lessons import load_zone
from portal.reconcile.model import ReconcileSettings
from portal.reconcile.report import BY_CHARACTER, FORMATS, ReportOptions, render
from portal.reconcile.store import run_reconciliation
from portal.web import i18n


def _day(value: str, option: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD", param_hint=option) from None


@cli.command("reconcile")
@click.option("--from", "first", required=True, metavar="DATE", help="First date (local).")
@click.option("--to", "last", required=True, metavar="DATE", help="Last date, inclusive.")
@click.option("--center", metavar="ID", help="Only this center.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to FILE instead of standard output (required for xlsx on a terminal).",
)
@click.option(
    "--lang",
    type=click.Choice(i18n.LANGS),
    help="Language of xlsx, html and csv (default: the portal's language setting).",
)
@click.option(
    "--csv-delimiter",
    "delimiter",
    type=click.Choice([",", ";"]),
    help="CSV: ',' (no BOM) or ';' (with a UTF-8 BOM, for Excel in ru/kk); default by --lang.",
)
@click.pass_obj
def reconcile_command(
    ctx: Context,
    first: str,
    last: str,
    center: str | None,
    fmt: str,
    output: Path | None,
    lang: str | None,
    delimiter: str | None,
) -> int:
    """One row per (child, group, date) with a confirmation or presence, with totals."""
    day1, day2 = _day(first, "--from"), _day(last, "--to")
    if day2 < day1:
        raise click.BadParameter(f"{last} is before --from {first}", param_hint="--to")
    portal = ctx.portal()
    settings = ReconcileSettings.from_portal(portal.settings)
    zone = load_zone(settings.timezone)
    cards = card_book(portal.engine, portal.settings.data_dir)
    result = run_reconciliation(
        portal.engine, day1, day2, settings, zone, center=center, cards=cards
    )
    lang = lang or portal.settings.language
    options = ReportOptions(lang, i18n.translator(lang), delimiter and BY_CHARACTER[delimiter])
    data = render(result, zone, fmt, options)
    if output is not None:
        try:
            output.write_bytes(data)
        except OSError as exc:
            raise Exit(f"{output}: {exc.strerror or exc}") from exc
        click.echo(f"{output}: {len(result.rows)} rows", err=True)
        return 0
    if fmt == "xlsx" and sys.stdout.isatty():
        raise Exit("--format xlsx needs --output FILE", 2)
    sys.stdout.buffer.write(data if data.endswith(b"\n") or fmt == "xlsx" else data + b"\n")
    sys.stdout.flush()
    return 0
