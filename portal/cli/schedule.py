"""``qatysu-portal schedule approve`` and ``qatysu-portal history`` (docs/reconciliation.md,
"Import history")."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import click

from portal.cli.base import Context, cli
from portal.reconcile.store import HISTORY_KINDS, approve_backlog, approve_schedule, history


def _day(_ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD", param=param)


@cli.group("schedule")
def schedule_group() -> None:
    """Operator decisions on the schedule."""


@schedule_group.command("approve")
@click.argument("group")
@click.argument("first", metavar="DATE", callback=_day)
@click.option("--to", "last", metavar="DATE", callback=_day, help="Last date (default DATE).")
@click.option("--by", required=True, help="The operator who checked the change.")
@click.option("--note", default="", help="Why (a make-up lesson agreed by phone, ...).")
@click.pass_obj
def approve(ctx: Context, group: str, first: date, last: date | None, by: str, note: str) -> int:
    """Approve GROUP's schedule as it stands now for its lessons from DATE to --to.

    A lesson whose schedule row was created or changed after its date carries
    schedule_changed_late until approved; after the approval the current
    version applies to those dates (a change made after the approval needs
    another one). The approval is stored with its author and time.
    """
    portal = ctx.portal()
    done = approve_schedule(
        portal.engine, group, first, last or first, by=by, note=note, now=portal.clock()
    )
    at = datetime.fromtimestamp(done.approved_ms / 1000, tz=UTC).isoformat(timespec="seconds")
    click.echo(
        f"approved the schedule of {done.group_id} for {done.first} .. {done.last} "
        f"by {done.by} at {at}"
    )
    return 0


@schedule_group.command("approve-all")
@click.argument("first", metavar="DATE", callback=_day)
@click.option("--to", "last", metavar="DATE", callback=_day, help="Last date (default DATE).")
@click.option("--center", help="Only this center's groups (default: every group).")
@click.option("--by", required=True, help="The operator who checked the schedules.")
@click.option("--note", default="", help="Why (the city's schedules imported at go-live, ...).")
@click.pass_obj
def approve_all(
    ctx: Context, first: date, last: date | None, center: str | None, by: str, note: str
) -> int:
    """Approve every group's schedule (or --center's) as it stands now, DATE to --to.

    For the backlog of a start: schedules first imported after lessons they
    cover (a city importing center by center, a center joining with its past).
    """
    portal = ctx.portal()
    done = approve_backlog(
        portal.engine,
        first,
        last or first,
        by=by,
        note=note,
        now=portal.clock(),
        center=center,
    )
    click.echo(
        f"approved the schedules of {len(done)} groups for {first} .. {last or first} by {by}"
    )
    return 0


@cli.command("history")
@click.argument("kind", type=click.Choice(HISTORY_KINDS))
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def history_command(ctx: Context, kind: str, key: str, as_json: bool) -> int:
    """Every stored version of KEY's rows, oldest first.

    KEY is a group (schedule, approvals), a child (roster, confirmations) or a
    badge UID (badge).
    """
    rows = history(ctx.portal().engine, kind, key)
    if not rows:
        click.echo(f"no {kind} history for {key!r}", err=True)
        return 1
    for row in rows:
        stamp = row["imported_ms"] if "imported_ms" in row else row["approved_ms"]
        when = datetime.fromtimestamp(int(stamp) / 1000, tz=UTC).isoformat(timespec="seconds")
        if as_json:
            click.echo(json.dumps({**row, "at": when}, ensure_ascii=False, sort_keys=True))
            continue
        skip = {"version", "id", "imported_ms", "approved_ms", "file"}
        fields = " ".join(f"{k}={v}" for k, v in row.items() if k not in skip)
        source = f" file={row['file']}" if row.get("file") else ""
        click.echo(f"{when} {fields}{source}")
    return 0
