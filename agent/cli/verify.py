"""``qatysu verify``: check a bundle offline."""

from __future__ import annotations

import json
from pathlib import Path

import click

from agent.cli.base import Exit, cli
from agent.exceptions import EncodingError, ProtocolError
from agent.protocol import parse_json_lenient, public_key_from_b64, verify_bundle


@cli.command("verify")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--public-key", metavar="B64", help="Require the bundle to be signed by this key.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def verify_command(file: Path, public_key: str | None, as_json: bool) -> int:
    """Verify a bundle written by 'qatysu export', without network or device.

    Checks every record's encoding, hash and signature and every link, bridging
    only the holes declared by signed gap records. Exit 0 intact, 3 intact with
    declared gaps (listed), 1 broken or forged.
    """
    if public_key is not None:
        try:
            public_key_from_b64(public_key)
        except ProtocolError as exc:
            raise Exit(f"--public-key: {exc}", 2) from exc
    try:
        bundle = parse_json_lenient(file.read_bytes())
    except OSError as exc:
        raise Exit(f"{file}: {exc.strerror or exc}") from exc
    except EncodingError as exc:
        raise Exit(f"{file}: not a bundle: {exc}") from exc
    report = verify_bundle(bundle, public_key)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "file": str(file),
                    "device": report.device,
                    "records": report.count,
                    "first_seq": report.first_seq,
                    "last_seq": report.last_seq,
                    "intact": report.failure is None,
                    "failure": None
                    if report.failure is None
                    else {
                        "seq": report.failure.seq,
                        "reason": report.failure.reason,
                        "detail": report.failure.detail,
                    },
                    "gaps": [
                        {
                            "first_seq": g.first_seq,
                            "last_seq": g.last_seq,
                            "last_hash": g.last_hash,
                            "reason": g.reason,
                            "declared_at": g.declared_at,
                        }
                        for g in report.gaps
                    ],
                }
            )
        )
    elif report.failure is not None:
        failure = report.failure
        where = f" at seq {failure.seq}" if failure.seq is not None else ""
        click.echo(f"{file}: BROKEN{where}: {failure.reason}: {failure.detail}")
    else:
        span = f"seq {report.first_seq}..{report.last_seq}" if report.count else "no records"
        state = f"intact with {len(report.gaps)} declared gap(s)" if report.gaps else "intact"
        click.echo(f"{file}: {state}, {report.count} records of device {report.device} ({span})")
        for gap in report.gaps:
            click.echo(
                f"  declared gap: seq {gap.first_seq}..{gap.last_seq} "
                f"({gap.reason or 'no reason given'}), declared at seq {gap.declared_at}"
            )
    return report.exit_code
