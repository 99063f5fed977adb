"""``qatysu-portal import-bundle``: ingest a bundle from ``qatysu export``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from portal.cli.base import Context, Exit, cli
from portal.exceptions import MalformedRequest
from portal.ingest.body import parse_lenient
from portal.ingest.bundles import ingest_bundle


@cli.command("import-bundle")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--receipt-out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the signed receipt here, for 'qatysu ack' on the device.",
)
@click.pass_obj
def import_bundle_command(ctx: Context, file: Path, receipt_out: Path | None) -> int:
    """Verify and store a bundle exactly as an upload over HTTP would be.

    Exit 0 when every record is stored (or already held), 1 when the portal
    refused part of it (the valid prefix is stored and covered by the receipt).
    """
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise Exit(f"{file}: {exc.strerror or exc}") from exc
    try:
        bundle = parse_lenient(raw)
    except MalformedRequest as exc:
        raise Exit(f"{file}: {exc}") from exc
    portal = ctx.portal()
    try:
        result = ingest_bundle(
            portal.engine,
            portal.key,
            bundle,
            now=portal.clock(),
            signatures=portal.settings.check_signatures,
            pool=portal.pool,
        )
    except MalformedRequest as exc:
        raise Exit(f"{file}: {exc}") from exc
    receipt = result.last.receipt
    if receipt_out is not None:
        receipt_out.write_text(json.dumps(receipt, sort_keys=True) + "\n", encoding="utf-8")
    outcome = result.last
    summary = (
        f"{file}: device {result.device_id}: {result.accepted} stored, "
        f"{result.duplicates} already held; receipt covers seq {receipt['seq']}"
    )
    if outcome.status == 409:
        click.echo(summary)
        raise Exit(f"{file}: bundle starts beyond the expected seq {outcome.expected_seq}")
    if outcome.status == 422:
        click.echo(summary)
        raise Exit(f"{file}: refused at {outcome.failure}")
    click.echo(summary)
    return 0
