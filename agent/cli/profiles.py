"""``qatysu profiles``: the board profiles ``qatysu init --profile`` accepts."""

from __future__ import annotations

import click

from agent.cli.base import cli
from agent.cli.output import echo_json, table
from agent.config.profiles import list_profiles


@cli.command("profiles")
@click.option("--json", "as_json", is_flag=True, help="One JSON array with every field.")
def profiles_command(as_json: bool) -> None:
    """List the board profiles (firmware_config/): board, reader and what each needs.

    Pick the one that matches the Pi and reader in front of you and pass its
    name to 'qatysu init --profile NAME'. Wiring tables: the profile's
    README.md and docs/technician.md.
    """
    profiles = list_profiles()
    if as_json:
        echo_json(
            [
                {
                    "name": p.name,
                    "description": p.description,
                    "boards": list(p.boards),
                    "drivers": [r.get("driver", "") for r in p.config.get("readers", [])],
                    "extras": list(p.extras),
                    "device_classes": list(p.device_classes),
                    "devices": list(p.devices),
                    "groups": list(p.groups),
                    "boot_config_lines": list(p.boot_config_lines),
                    "notes": list(p.notes),
                    "readme": str(p.readme),
                }
                for p in profiles
            ]
        )
        return
    table(
        "Board profiles",
        ["name", "reader", "groups", "description"],
        [
            (
                p.name,
                ", ".join(r.get("driver", "") for r in p.config.get("readers", [])),
                " ".join(p.groups) or "-",
                p.description,
            )
            for p in profiles
        ],
    )
