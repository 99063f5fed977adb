"""``qatysu-portal devices`` and ``device revoke``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click

from portal.cli.base import Context, cli
from portal.registry import list_devices, revoke_device


def _when(ms: int | None) -> str:
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@cli.command("devices")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of devices.")
@click.pass_obj
def devices_command(ctx: Context, as_json: bool) -> int:
    """Devices with center, last seen, head seq and integrity events."""
    rows = list_devices(ctx.portal().engine)
    if as_json:
        click.echo(json.dumps(rows))
        return 0
    header = ("device", "center", "last seen", "head seq", "integrity events", "revoked")
    cells = [
        (
            r["device_id"],
            r["center_id"],
            _when(r["last_seen_ms"]),
            str(r["head_seq"]),
            str(r["integrity_events"]),
            _when(r["revoked_ms"]) if r["revoked_ms"] else "",
        )
        for r in rows
    ]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*header)
        for row in cells:
            table.add_row(*row)
        Console().print(table)
    else:
        click.echo("\t".join(header))
        for row in cells:
            click.echo("\t".join(row))
    return 0


@cli.group("device")
def device() -> None:
    """One device."""


@device.command("revoke")
@click.argument("device_id", metavar="ID")
@click.pass_obj
def device_revoke(ctx: Context, device_id: str) -> int:
    """Refuse device ID from now on; its stored history stays."""
    portal = ctx.portal()
    changed = revoke_device(portal.engine, device_id, now=portal.clock())
    click.echo(f"device {device_id} {'revoked' if changed else 'was already revoked'}")
    return 0
