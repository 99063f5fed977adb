"""``admin-token create`` and ``enroll-token create``: tokens printed once, stored hashed."""

from __future__ import annotations

import re

import click

from portal.cli.base import Context, Exit, cli
from portal.registry import (
    ROLES,
    create_admin_token,
    create_enroll_token,
    list_admin_tokens,
    list_enroll_tokens,
    revoke_admin_tokens,
    revoke_enroll_token,
)

_TTL = re.compile(r"(\d+)([smhd])")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_ttl(text: str) -> int:
    """``90s``, ``30m``, ``24h``, ``7d`` (or plain seconds) as milliseconds."""
    if text.isdigit():
        return int(text) * 1000
    match = _TTL.fullmatch(text.strip())
    if not match or int(match.group(1)) == 0:
        raise Exit(f"--ttl {text!r}: use a positive number with s, m, h or d, e.g. 24h", 2)
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


@cli.group("admin-token")
def admin_token() -> None:
    """Tokens for operators (read and write) and auditors (read)."""


@admin_token.command("create")
@click.option("--name", required=True, help="Who holds the token (shown in logs and pages).")
@click.option("--role", type=click.Choice(ROLES), default="operator", show_default=True)
@click.pass_obj
def admin_token_create(ctx: Context, name: str, role: str) -> int:
    """Print a new admin token once; only its hash is kept."""
    portal = ctx.portal()
    click.echo(create_admin_token(portal.engine, name, role, now=portal.clock()))
    return 0


@admin_token.command("revoke")
@click.argument("name")
@click.pass_obj
def admin_token_revoke(ctx: Context, name: str) -> int:
    """Revoke every token issued under NAME; their sessions end with them."""
    portal = ctx.portal()
    count = revoke_admin_tokens(portal.engine, name, now=portal.clock())
    if count == 0:
        raise Exit(f"no live admin token named {name!r}")
    click.echo(f"revoked {count} token{'s' if count > 1 else ''} of {name}")
    return 0


@admin_token.command("list")
@click.pass_obj
def admin_token_list(ctx: Context) -> int:
    """Token names, roles and whether revoked (the tokens themselves are not kept)."""
    rows = list_admin_tokens(ctx.portal(read_only=True).engine)
    if not rows:
        click.echo("no admin tokens (create one with 'admin-token create')", err=True)
    for row in rows:
        state = "revoked" if row["revoked_ms"] is not None else "live"
        click.echo(f"{row['name']}\t{row['role']}\t{state}")
    return 0


@cli.group("enroll-token")
def enroll_token() -> None:
    """Single-use tokens that let one device enroll into a center."""


@enroll_token.command("create")
@click.option("--center", "center_id", required=True, help="The center the device belongs to.")
@click.option("--ttl", default="24h", show_default=True, help="Validity: 30m, 24h, 7d, ...")
@click.pass_obj
def enroll_token_create(ctx: Context, center_id: str, ttl: str) -> int:
    """Print a single-use enrollment token for a center."""
    ttl_ms = parse_ttl(ttl)
    portal = ctx.portal()
    click.echo(create_enroll_token(portal.engine, center_id, ttl_ms, now=portal.clock()))
    return 0


@enroll_token.command("list")
@click.pass_obj
def enroll_token_list(ctx: Context) -> int:
    """Token ids (start of the stored hash), centers, expiry and state."""
    portal = ctx.portal(read_only=True)
    rows = list_enroll_tokens(portal.engine)
    if not rows:
        click.echo("no enrollment tokens", err=True)
    now = portal.clock()
    for row in rows:
        if row["device_id"] is not None:
            state = f"used by {row['device_id']}"
        elif row["expires_ms"] <= now:
            state = "expired"
        else:
            state = "live"
        click.echo(f"{row['token_hash'][:12]}\t{row['center_id']}\t{state}")
    return 0


@enroll_token.command("revoke")
@click.argument("token_id", metavar="ID")
@click.pass_obj
def enroll_token_revoke(ctx: Context, token_id: str) -> int:
    """Refuse the unused token whose id (from 'enroll-token list') is ID."""
    portal = ctx.portal(read_only=True)
    revoke_enroll_token(portal.engine, token_id.lower(), now=portal.clock())
    click.echo(f"enrollment token {token_id} revoked")
    return 0
