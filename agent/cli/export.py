"""``qatysu export DIR`` and ``qatysu ack FILE``: the offline path on the device."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from agent.cli.base import Context, cli
from agent.config import AgentConfig, load_config
from agent.control import ControlClient, daemon_running
from agent.daemon.daemon import check_enrolled


def _daemon(config: AgentConfig) -> ControlClient | None:
    """The running daemon's client; None when the buffer may be opened here."""
    path = config.device.control_socket
    return ControlClient(path, timeout_s=120.0) if daemon_running(path) else None


@cli.command("export")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.pass_obj
def export_command(ctx: Context, directory: Path, as_json: bool) -> int:
    """Write the pending records to a bundle file in DIRECTORY (e.g. a USB stick).

    Nothing is freed: take the file to the city, where 'qatysu-portal
    import-bundle FILE --receipt-out R' stores it, then run 'qatysu ack R' here.
    While 'qatysu run' runs, the daemon writes the file (it must be able to
    write to DIRECTORY).
    """
    from agent.offline import export_bundle

    config = load_config(ctx.config_path)
    check_enrolled(config)
    folder = directory.resolve()
    client = _daemon(config)
    if client is not None:
        result = client.request("export", dir=str(folder))
    else:
        from agent.daemon.writer import open_writer

        writer = open_writer(config)
        try:
            path = export_bundle(writer, folder)
            count = writer.pending_count
        finally:
            writer.close()
        first, last = (int(part) for part in path.stem.rsplit("-", 2)[1:])
        result = {"path": str(path), "first_seq": first, "last_seq": last, "count": count}
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(
            f"wrote {result['path']}: {result['count']} records, "
            f"seq {result['first_seq']}..{result['last_seq']}"
        )
    return 0


@cli.command("ack")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.pass_obj
def ack_command(ctx: Context, file: Path, as_json: bool) -> int:
    """Apply a receipt FILE written by 'qatysu-portal import-bundle --receipt-out'.

    The receipt must be signed by the pinned portal key and name a record this
    device holds; otherwise nothing is freed, an alarm record is written and
    the command fails.
    """
    from agent.offline import apply_receipt_file, read_receipt_file

    config = load_config(ctx.config_path)
    check_enrolled(config)
    client = _daemon(config)
    result: dict[str, Any]
    if client is not None:
        result = client.request("ack", receipt=read_receipt_file(file))
    else:
        from agent.daemon.writer import open_writer

        writer = open_writer(config)
        try:
            freed = apply_receipt_file(writer, file, config.portal.public_key)
            result = {"freed": freed, "last_ack_seq": writer.last_ack[0]}
        finally:
            writer.close()
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(
            f"{file}: {result['freed']} records freed, acknowledged up to seq "
            f"{result['last_ack_seq']}"
        )
    return 0
