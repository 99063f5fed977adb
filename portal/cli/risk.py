"""``qatysu-portal risk`` and ``spotcheck add``: the queue for unannounced spot checks."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path

import click

from portal.cli.base import Context, Exit, cli
from portal.reconcile.lessons import load_zone
from portal.reconcile.model import ReconcileSettings
from portal.reconcile.report import BY_CHARACTER, ReportOptions
from portal.reconcile.risk import SpotCheck
from portal.reconcile.risk_report import FORMATS, render
from portal.reconcile.risk_store import add_spotcheck, run_risk
from portal.reconcile.store import center_names
from portal.web import i18n

MAX_DAYS = 366


def _day(value: str, option: str) -> date:
    """A date, or one line and exit 2 (no usage block: the operator sees only the fault)."""
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise Exit(f"{option}: {value!r} is not a date YYYY-MM-DD", 2) from None


@cli.command("risk")
@click.option("--from", "first", required=True, metavar="DATE", help="First date (local).")
@click.option("--to", "last", required=True, metavar="DATE", help="Last date, inclusive.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to FILE instead of standard output.",
)
@click.option(
    "--lang",
    type=click.Choice(i18n.LANGS),
    help="Language of csv (default: the portal's language setting).",
)
@click.option(
    "--csv-delimiter",
    "delimiter",
    type=click.Choice([",", ";"]),
    help="CSV: ',' (no BOM) or ';' (with a UTF-8 BOM, for Excel in ru/kk); default by --lang.",
)
@click.pass_obj
def risk_command(
    ctx: Context,
    first: str,
    last: str,
    fmt: str,
    output: Path | None,
    lang: str | None,
    delimiter: str | None,
) -> int:
    """Centers and ISO weeks ranked for spot checks, highest score first, with reasons."""
    day1, day2 = _day(first, "--from"), _day(last, "--to")
    if day2 < day1:
        raise Exit(f"--to: {last} is before --from {first}", 2)
    if (day2 - day1).days >= MAX_DAYS:
        raise Exit(f"--to: the queue covers at most {MAX_DAYS} days", 2)
    portal = ctx.portal()
    settings = ReconcileSettings.from_portal(portal.settings)
    entries = run_risk(portal.engine, day1, day2, settings, load_zone(settings.timezone))
    lang = lang or portal.settings.language
    with portal.engine.connect() as conn:
        names = center_names(conn)
    options = ReportOptions(
        lang, i18n.translator(lang), delimiter and BY_CHARACTER[delimiter], center_names=names
    )
    data = render(entries, day1, day2, fmt, options)
    if output is not None:
        try:
            output.write_bytes(data)
        except OSError as exc:
            raise Exit(f"{output}: {exc.strerror or exc}") from exc
        click.echo(f"{output}: {len(entries)} center-weeks", err=True)
        return 0
    if fmt == "xlsx" and sys.stdout.isatty():
        raise Exit("--format xlsx needs --output FILE", 2)
    sys.stdout.buffer.write(data if data.endswith(b"\n") or fmt == "xlsx" else data + b"\n")
    sys.stdout.flush()
    return 0


@cli.group("spotcheck")
def spotcheck_group() -> None:
    """Inspectors' unannounced counts, shown next to the risk queue."""


@spotcheck_group.command("add")
@click.argument("center")
@click.argument("day", metavar="DATE")
@click.option("--present", required=True, metavar="N", help="Children the inspector counted.")
@click.option("--note", default="", help="What the inspector saw.")
@click.option("--by", "by", default="", metavar="NAME", help="The inspector.")
@click.pass_obj
def spotcheck_add(ctx: Context, center: str, day: str, present: str, note: str, by: str) -> int:
    """Record that an inspector counted N children present at CENTER on DATE."""
    when = _day(day, "DATE")
    try:
        count = int(present)
    except ValueError:
        raise Exit(f"--present: {present!r} is not a count of children", 2) from None
    portal = ctx.portal()
    number = add_spotcheck(
        portal.engine, SpotCheck(center, when, count, note, by), now=portal.clock()
    )
    click.echo(f"spot check {number}: {center} {when}: {count} present")
    return 0
