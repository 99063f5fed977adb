"""``qatysu-portal cards ...`` and ``center set``: cards that prove their reads (docs/cards.md).

Keys are never printed: ``cards list`` shows states and counters only.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from portal.cards.registry import (
    create_grant,
    end_grant,
    import_cards,
    list_cards,
    list_grants,
    revoke_card,
)
from portal.cli.base import Context, cli
from portal.cli.tokens import parse_ttl
from portal.keys import load_or_create_card_master


@cli.group("cards")
def cards() -> None:
    """NTAG 424 DNA cards: station grants, imports, the registry, revocation."""


@cards.command("issue")
@click.option("--count", type=int, required=True, help="How many cards the station may make.")
@click.option("--ttl", default="8h", show_default=True, help="Validity: 30m, 8h, 2d, ...")
@click.option(
    "--url",
    default="https://qatysu.kz/c",
    show_default=True,
    help="The base URL written into each card's NDEF file.",
)
@click.pass_obj
def cards_issue(ctx: Context, count: int, ttl: str, url: str) -> int:
    """Print once a station grant good for COUNT cards; only its hash is kept."""
    ttl_ms = parse_ttl(ttl)
    portal = ctx.portal()
    load_or_create_card_master(portal.settings.data_dir)  # refuse a shared one now
    click.echo(create_grant(portal.engine, count, ttl_ms, url, now=portal.clock()))
    return 0


@cards.command("stations")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
@click.pass_obj
def cards_stations(ctx: Context, as_json: bool) -> int:
    """Station grants: id, cards used of count, the station key bound, expiry, ended."""
    rows = list_grants(ctx.portal().engine)
    if as_json:
        click.echo(json.dumps(rows, sort_keys=True))
        return 0
    for r in rows:
        state = "ended" if r["ended_ms"] is not None else "live"
        key = r["station_key"] or "(no station enrolled)"
        click.echo(f"{r['station']}\t{r['used']}/{r['count']}\t{state}\t{key}")
    return 0


@cards.command("end")
@click.argument("station")
@click.option(
    "--revoke-cards-since",
    metavar="DURATION",
    help="Also revoke the cards issued under it in the last DURATION (30m, 8h, 2d, ...).",
)
@click.pass_obj
def cards_end(ctx: Context, station: str, revoke_cards_since: str | None) -> int:
    """End station grant STATION now (a lost or stolen station): its requests fail."""
    portal = ctx.portal()
    now = portal.clock()
    since = None if revoke_cards_since is None else now - parse_ttl(revoke_cards_since)
    revoked = end_grant(portal.engine, station.lower(), now=now, revoke_since_ms=since)
    extra = f"; {revoked} cards revoked" if since is not None else ""
    click.echo(f"station {station.lower()} ended{extra}")
    return 0


@cards.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.pass_obj
def cards_import(ctx: Context, file: Path) -> int:
    """Register cards personalised elsewhere (CSV badge_uid,kind,meta_key,file_key)."""
    portal = ctx.portal()
    master = load_or_create_card_master(portal.settings.data_dir)
    done = import_cards(portal.engine, master, file.read_bytes(), str(file), now=portal.clock())
    click.echo(done.summary(str(file)))
    return 0


@cards.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
@click.pass_obj
def cards_list(ctx: Context, as_json: bool) -> int:
    """Registered cards: UID, kind, state, key source, activation counter (never keys)."""
    rows = list_cards(ctx.portal().engine)
    if as_json:
        click.echo(json.dumps(rows, sort_keys=True))
        return 0
    for r in rows:
        counter = "" if r["activated_counter"] is None else r["activated_counter"]
        station = r["station"] or ""
        click.echo(
            f"{r['uid']}\t{r['kind']}\t{r['state']}\t{r['key_source']}\t{counter}\t{station}"
        )
    return 0


@cards.command("revoke")
@click.argument("uid")
@click.option("--replaced-by", metavar="UID", help="The card that replaces it.")
@click.pass_obj
def cards_revoke(ctx: Context, uid: str, replaced_by: str | None) -> int:
    """Revoke card UID (lost or replaced): its reads from now on are not authenticated."""
    portal = ctx.portal()
    uid, replaced_by = uid.upper(), replaced_by.upper() if replaced_by else None
    revoke_card(portal.engine, uid, now=portal.clock(), replaced_by=replaced_by)
    click.echo(f"card {uid} {'replaced by ' + replaced_by if replaced_by else 'revoked'}")
    return 0
