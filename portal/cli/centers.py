"""``qatysu-portal center add``: register a club center."""

from __future__ import annotations

import click

from portal.cli.base import Context, cli
from portal.registry import add_center


@cli.group("center")
def center() -> None:
    """Club centers (each device belongs to one)."""


@center.command("add")
@click.argument("center_id", metavar="ID")
@click.option("--name", required=True, help="The center's display name.")
@click.pass_obj
def center_add(ctx: Context, center_id: str, name: str) -> int:
    """Register center ID."""
    portal = ctx.portal()
    add_center(portal.engine, center_id, name, now=portal.clock())
    click.echo(f"center {center_id} added")
    return 0
