"""``qatysu-portal verify``: re-verify every stored chain, signatures included."""

from __future__ import annotations

import json

import click

from portal.cli.base import Context, cli
from portal.ingest.reverify import verify_stored


@cli.command("verify")
@click.option("--device", "device_id", metavar="ID", help="Only this device.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per device.")
@click.pass_obj
def verify_command(ctx: Context, device_id: str | None, as_json: bool) -> int:
    """Check every stored record's hash, signature and link from seq 1.

    Bridges only holes declared by signed gap records, and marks records stored
    with only the batch's last signature checked as checked. Exit 0 when every
    chain is intact, 1 otherwise.
    """
    portal = ctx.portal()
    verdicts = verify_stored(portal.engine, device_id, now=portal.clock())
    for v in verdicts:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "device": v.device_id,
                        "records": v.records,
                        "declared_gaps": v.gaps,
                        "newly_checked": v.newly_checked,
                        "intact": v.ok,
                        "head_seq": v.head_seq,
                        "chain_end": v.chain_end,
                        "failure": None
                        if v.failure is None
                        else {"seq": v.failure.seq, "reason": v.failure.reason},
                    }
                )
            )
        elif v.failure is not None:
            click.echo(f"{v.device_id}: BROKEN at {v.failure}")
        elif not v.head_matches:
            click.echo(
                f"{v.device_id}: BROKEN: stored head at seq {v.head_seq}, "
                f"stored chain ends at seq {v.chain_end}"
            )
        else:
            click.echo(
                f"{v.device_id}: intact, {v.records} records, {v.gaps} declared gaps"
                + (f", {v.newly_checked} signatures checked now" if v.newly_checked else "")
            )
    return 0 if all(v.ok for v in verdicts) else 1
