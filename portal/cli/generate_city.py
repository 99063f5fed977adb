"""``qatysu-portal generate-city``: a synthetic city for demos, through the real ingest."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from portal.cli.base import Context, Exit, cli
from portal.keys import load_or_create_card_master
from portal.registry import list_centers
from portal.synthetic.feed import IngestUplink, apply_plan, register_sun_cards
from portal.synthetic.generator import CityConfig, generate


@cli.command("generate-city")
@click.option("--centers", type=click.IntRange(1, 500), default=3, show_default=True)
@click.option("--days", type=click.IntRange(1, 62), default=14, show_default=True)
@click.option(
    "--from",
    "first",
    default="2024-02-19",
    show_default=True,
    metavar="DATE",
    help="First day (local).",
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--unsynced",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of devices whose clock never reports NTP sync (decision 0810).",
)
@click.option(
    "--sun-centers",
    type=click.IntRange(0, 500),
    default=0,
    show_default=True,
    help="The first N centers issue NTAG 424 DNA cards whose reads carry SUN messages "
    "under keys derived from this portal's card master key (registered as active).",
)
@click.option(
    "--csv-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Also write schedule.csv, roster.csv and confirmations.csv here.",
)
@click.option(
    "--into-existing",
    is_flag=True,
    help="Merge into centers that already exist (synthetic data cannot be taken out).",
)
@click.pass_obj
def generate_city(
    ctx: Context,
    centers: int,
    days: int,
    first: str,
    seed: int,
    unsynced: float,
    sun_centers: int,
    csv_dir: Path | None,
    into_existing: bool,
) -> int:
    """Simulate CENTERS clubs for DAYS days: devices upload signed records through the
    portal's own ingest, and the schedule, roster and confirmations are imported, each
    file at its simulated time (late schedule changes after their dates).

    Synthetic data with every attack class of docs/reconciliation.md ("The generated
    city") injected, for demos and trials only.
    """
    try:
        day = datetime.strptime(first, "%Y-%m-%d").date()
    except ValueError:
        raise click.BadParameter(
            f"{first!r} is not a date YYYY-MM-DD", param_hint="--from"
        ) from None
    portal = ctx.portal()
    # Devices upload every 10 min: inside the 15 min proof bracket, so honest taps come
    # out verified (an hourly upload would leave every one present_unproven; the real
    # agent uploads every 30 s).
    if sun_centers > centers:
        raise click.BadParameter(
            f"{sun_centers} is more than the {centers} centers", param_hint="--sun-centers"
        )
    master = load_or_create_card_master(portal.settings.data_dir) if sun_centers else b""
    config = CityConfig(
        centers=centers,
        days=days,
        first=day,
        seed=seed,
        upload_s=600,
        unsynced=unsynced,
        sun_centers=sun_centers,
        sun_master=master,
    )
    existing = {row["center_id"] for row in list_centers(portal.engine)}
    clash = sorted(existing.intersection(config.center_ids()))
    if clash and not into_existing:
        raise Exit(
            f"center {clash[0]} already exists ({len(clash)} of the generated ids do); "
            "synthetic children and records would merge into it with no undo: use a "
            "fresh --data-dir, or --into-existing if that is meant",
            2,
        )
    city, _ = generate(config, IngestUplink(portal.engine, portal.key, now=portal.clock()))
    # The files at the times the city's clubs and parents sent them: the schedule and
    # roster before the period, make-ups before their dates, late changes after theirs.
    apply_plan(portal.engine, city.import_plan())
    sun_cards = register_sun_cards(portal.engine, city, portal.clock())
    if csv_dir is not None:
        csv_dir.mkdir(parents=True, exist_ok=True)
        for kind, data in (
            ("schedule", city.schedule_csv()),
            ("roster", city.roster_csv()),
            ("confirmations", city.confirmations_csv()),
        ):
            (csv_dir / f"{kind}.csv").write_bytes(data)
    click.echo(
        f"{centers} centers, {len(city.children)} children, {city.record_count()} "
        f"records, {len(city.confirmations)} confirmations, {day} .. {city.last}"
        + (f", {sun_cards} SUN cards at {sun_centers} centers" if sun_centers else "")
    )
    return 0
