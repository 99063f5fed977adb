"""``qatysu-portal center add|list|set``: the club centers."""

from __future__ import annotations

import click

from portal.cards.registry import set_require_card_auth
from portal.cli.base import Context, Exit, cli
from portal.registry import add_center, list_centers, set_district


@cli.group("center")
def center() -> None:
    """Club centers (each device belongs to one)."""


@center.command("add")
@click.argument("center_id", metavar="ID")
@click.option("--name", required=True, help="The center's display name.")
@click.option("--district", help="The city district it is in (the overview filters by it).")
@click.pass_obj
def center_add(ctx: Context, center_id: str, name: str, district: str | None) -> int:
    """Register center ID (letters, digits, '.', '_', '-'; at most 64)."""
    portal = ctx.portal()  # the registry refuses an id no URL can carry (exit 2)
    add_center(portal.engine, center_id, name, now=portal.clock(), district=district)
    click.echo(f"center {center_id} added")
    return 0


@center.command("list")
@click.pass_obj
def center_list(ctx: Context) -> int:
    """Every center's id and name."""
    rows = list_centers(ctx.portal(read_only=True).engine)
    if not rows:
        click.echo("no centers (add one with 'center add')", err=True)
    for row in rows:
        click.echo(f"{row['center_id']}\t{row['name']}\t{row['district'] or '-'}")
    return 0


@center.command("set")
@click.argument("center_id", metavar="ID")
@click.option(
    "--require-card-auth",
    type=click.Choice(["on", "off"]),
    help="on: reads of cards that do not prove their reads are card_not_authenticated.",
)
@click.option("--district", help="The city district ('' clears it).")
@click.pass_obj
def center_set(
    ctx: Context, center_id: str, require_card_auth: str | None, district: str | None
) -> int:
    """Change a center's settings."""
    if require_card_auth is None and district is None:
        raise Exit("center set: give --require-card-auth or --district", 2)
    if "\x00" in center_id:
        raise Exit(f"center {center_id!r} does not exist", 2)
    engine = ctx.portal().engine
    if require_card_auth is not None:
        set_require_card_auth(engine, center_id, require_card_auth == "on")
        click.echo(f"center {center_id}: require_card_auth {require_card_auth}")
    if district is not None:
        set_district(engine, center_id, district)
        click.echo(f"center {center_id}: district {district.strip() or '-'}")
    return 0
