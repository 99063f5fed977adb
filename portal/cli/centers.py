"""``qatysu-portal center add``: register a club center."""

from __future__ import annotations

import click

from portal.cli.base import Context, Exit, cli
from portal.registry import CENTER_ID, add_center, list_centers


@cli.group("center")
def center() -> None:
    """Club centers (each device belongs to one)."""


@center.command("add")
@click.argument("center_id", metavar="ID")
@click.option("--name", required=True, help="The center's display name.")
@click.pass_obj
def center_add(ctx: Context, center_id: str, name: str) -> int:
    """Register center ID (letters, digits, '.', '_', '-'; at most 64)."""
    if not CENTER_ID.fullmatch(center_id):
        raise Exit(
            f"center id {center_id!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            2,
        )
    portal = ctx.portal()
    add_center(portal.engine, center_id, name, now=portal.clock())
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
        click.echo(f"{row['center_id']}\t{row['name']}")
    return 0
