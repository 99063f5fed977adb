"""The commented ``agent.toml`` that ``qatysu init --profile`` writes, without I/O.

Every key the profile sets is written with a comment saying what it means,
so a technician can edit the file on site without the docs. Keys left at
their defaults are mentioned in comments only: a later default change then
reaches the device. The text is checked by loading it back before anyone
writes it. A reader's keys are explained by its driver's config class (the
``comment`` metadata of its fields), the list of drivers by the registry.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import tomlkit

from agent.config.profiles import Profile
from agent.config.schema import DeviceConfig, config_from_dict
from agent.exceptions import QatysuError
from agent.readers.registry import DRIVERS, config_class

__all__ = ["render_config"]

_COMMENTS: dict[str, str] = {
    "name": "name in records and on the portal",
    "pin": "BCM (GPIO) number, not the physical pin",
    "pull": "up | down | none (internal resistor)",
    "open_when": "high | low: the level that means open",
    "debounce_ms": "a change must hold this long to count",
    "green_pin": "BCM number of the green LED",
    "red_pin": "BCM number of the red LED",
    "buzzer_pin": "BCM number of the buzzer",
}


def _value(value: Any) -> str:
    return str(tomlkit.item(value).as_string())


def _reader_comments(driver: Any) -> dict[str, str]:
    comments = {"driver": " | ".join(DRIVERS)}
    try:
        cls = config_class(driver) if isinstance(driver, str) else None
    except QatysuError:
        cls = None  # an unknown driver: loading the text below says so
    for f in fields(cls) if cls is not None else ():
        if "comment" in f.metadata:
            comments.setdefault(f.name, f.metadata["comment"])
    return comments


def _entry(lines: list[str], values: dict[str, Any], comments: dict[str, str]) -> None:
    for key, value in values.items():
        comment = comments.get(key)
        text = f"{key} = {_value(value)}"
        lines.append(f"{text:<36} # {comment}" if comment else text)


def render_config(profile: Profile, state_dir: Path | None = None) -> str:
    """The config text for ``profile``; raises ConfigError if it would not load."""
    state_dir = state_dir or DeviceConfig().state_dir
    lines = [
        f"# Qatysu agent configuration, written by 'qatysu init --profile {profile.name}'.",
        f"# Board: {profile.description}.",
        "# Pins are BCM (GPIO) numbers. Wiring: docs/technician.md and the profile's",
        f"# README.md ({profile.readme}).",
        "# Change a value with 'qatysu config set KEY VALUE' (it keeps these comments)",
        "# and check the file with 'qatysu config validate'.",
        "",
        "[device]",
        "# Records, receipts and the device key (device.key, mode 0600) live here.",
        f"state_dir = {_value(str(state_dir))}",
        "# control_socket = \"/run/qatysu/control.sock\"  # how other commands reach 'qatysu run'",
        "",
        "[portal]",
        "# Written by 'qatysu enroll --portal URL --token TOKEN': url, device_id,",
        "# center_id and public_key (the portal's key, pinned: receipts must carry it).",
        'url = ""',
        '# ca_file = ""          # extra CA bundle for a city PKI; TLS is always verified',
        "# upload_interval_s = 30 # upload at least this often",
        "# batch_records = 500",
        "",
    ]
    for section in ("readers", "doors", "tamper"):
        entries = profile.config.get(section, [])
        if section == "tamper" and entries:
            lines.append("# The enclosure's lid switch: opening the box is recorded.")
        for entry in entries:
            lines.append(f"[[{section}]]")
            if section == "readers":
                _entry(lines, entry, _reader_comments(entry.get("driver")))
            else:
                _entry(lines, entry, _COMMENTS)
            lines.append("")
    feedback = profile.config.get("feedback")
    if feedback:
        lines.append("# LEDs and buzzer at the door (accepted: green and a beep; fault: red).")
        lines.append("[feedback]")
        _entry(lines, feedback, _COMMENTS)
        lines.append("")
    lines += [
        "[heartbeat]",
        "interval_s = 300                     # a heartbeat record this often (seconds)",
        "",
        "[buffer]",
        "quota_mb = 512                       # warn (alarm record, red LED) beyond this",
        "",
    ]
    text = "\n".join(lines)
    config_from_dict(tomlkit.parse(text).unwrap(), profile.path / "profile.toml")
    return text
