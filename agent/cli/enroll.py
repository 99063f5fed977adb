"""``qatysu enroll``: register the device key with the portal and pin the portal's key."""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from agent import __version__
from agent.cli.base import Context, Exit, cli
from agent.cli.output import busy, echo_json
from agent.cli.state import cli_prefix, require_key
from agent.config import load_config
from agent.config.edit import set_values, write_preserving_mode
from agent.exceptions import (
    ConfigError,
    KeyFileError,
    PortalRefused,
    PortalUnreachable,
    ProtocolError,
)
from agent.identity import load_key_file
from agent.protocol import public_key_b64, public_key_from_b64

MODEL_FILE = Path("/proc/device-tree/model")


def hardware_facts() -> dict[str, Any]:
    """What the portal shows about the board (informative only)."""
    facts: dict[str, Any] = {"machine": platform.machine(), "kernel": platform.release()}
    with contextlib.suppress(OSError):
        facts["model"] = MODEL_FILE.read_text("ascii", "replace").rstrip("\x00\n")
    return facts


@cli.command("enroll")
@click.option("--portal", "url", required=True, metavar="URL", help="Portal base URL (https://).")
@click.option(
    "--token", required=True, help="Single-use enrollment token from the portal operator."
)
@click.option(
    "--insecure", is_flag=True, help="Allow a plain http:// portal (a lab, never a club)."
)
@click.option("--force", is_flag=True, help="Enroll although a device id is set (another portal).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.pass_obj
def enroll_command(
    obj: Context, url: str, token: str, insecure: bool, force: bool, as_json: bool
) -> None:
    """Register this device's key with the portal and pin the portal's key.

    Sends the public half of the device key with the token; writes
    portal.url, device_id, center_id and public_key (the portal's key, which
    every receipt must be signed with) into the config. TLS is always
    verified (portal.ca_file adds a city CA); plain http is refused unless
    --insecure.

    A device key enrolls once. Run again on an enrolled device with the same
    portal, it changes nothing and says so (exit 0; the token stays unused);
    another portal needs --force. A new token for a key the portal already
    has is refused: after a lost key, 'qatysu init --new-key' comes first.
    Errors are one line (with --json, also {"error", "message"} on stdout).
    """

    def fail(kind: str, message: str, code: int = 1) -> Exit:
        if as_json:
            echo_json({"error": kind, "message": message})
        return Exit(message, code)

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail("invalid", f"--portal: {url!r} is not an https:// URL", 2)
    if parts.scheme == "http" and not insecure:
        raise fail(
            "invalid",
            f"--portal: {url} is plain http; use https, or --insecure for a lab portal",
            2,
        )
    path = obj.config_path
    try:
        config = load_config(path)
    except ConfigError as exc:
        raise fail("invalid", str(exc), 2) from exc
    enrolled = config.portal.device_id
    if enrolled and not force:
        if config.portal.url.rstrip("/") != url.rstrip("/"):
            raise fail(
                "enrolled_elsewhere",
                f"{path}: already enrolled as {enrolled} with {config.portal.url}; "
                f"enrolling with {url} needs --force",
                2,
            )
        result = _result(
            config.portal.url, enrolled, config.portal.center_id, config.portal.public_key, path
        )
        if as_json:
            echo_json({**result, "already_enrolled": True})
        else:
            click.echo(
                f"already enrolled as device {enrolled} of center {config.portal.center_id} "
                f"with {config.portal.url}: nothing changed (the token stays unused)"
            )
        return
    try:
        require_key(config)
        key = load_key_file(config.key_path)
    except Exit as exc:
        raise fail("no_key", exc.format_message(), exc.code) from exc
    except KeyFileError as exc:
        raise fail("bad_key", str(exc)) from exc
    from agent.uplink.client import PortalClient

    try:
        client = PortalClient(
            url, ca_file=config.portal.ca_file, insecure=insecure, timeout_s=config.portal.timeout_s
        )
    except ConfigError as exc:
        raise fail("invalid", str(exc), 2) from exc
    try:
        with client, busy(f"enrolling with {url}..."):
            answer = client.enroll(token, public_key_b64(key), __version__, hardware_facts())
    except PortalRefused as exc:
        kind, line = _refusal(url, exc)
        raise fail(kind, line) from exc
    except PortalUnreachable as exc:
        raise fail("unreachable", f"cannot reach the portal: {exc}") from exc
    try:
        public_key_from_b64(answer["portal_public_key"])
    except ProtocolError as exc:
        raise fail("bad_answer", f"{url}: the portal's public key is not usable: {exc}") from exc
    changes = [
        ("portal.url", url.rstrip("/")),
        ("portal.device_id", answer["device_id"]),
        ("portal.center_id", answer["center_id"]),
        ("portal.public_key", answer["portal_public_key"]),
    ]
    try:
        text, _ = set_values(path.read_text(encoding="utf-8"), changes, path)
        write_preserving_mode(path, text)
    except OSError as exc:
        raise fail("cannot_write", f"{path}: cannot write: {exc.strerror or exc}") from exc
    result = _result(
        url, answer["device_id"], answer["center_id"], answer["portal_public_key"], path
    )
    if as_json:
        echo_json(result)
        return
    click.echo(f"enrolled as device {result['device_id']} of center {result['center_id']}")
    click.echo(f"pinned portal key {result['portal_public_key']} in {path}")
    click.echo(f"next: {cli_prefix(config)} doctor; systemctl restart qatysu-agent")


def _result(url: str, device: str, center: str, portal_key: str, path: Path) -> dict[str, Any]:
    return {
        "device_id": device,
        "center_id": center,
        "portal_public_key": portal_key,
        "portal": url.rstrip("/"),
        "config": str(path),
    }


# The portal's refusals of POST /enroll (docs/portal.md, Device API), as the
# technician can act on them.
_REFUSALS = {
    401: ("unknown_token", "the portal does not know this enrollment token (mistyped?)"),
    410: (
        "token_gone",
        "this enrollment token has expired or was used by another device key: "
        "ask the portal operator for a new one",
    ),
    409: (
        "key_enrolled",
        "the portal already has this device key, enrolled with another token: a key "
        "enrolls once (after a lost key, 'qatysu init --new-key' comes first)",
    ),
}


def _refusal(url: str, exc: PortalRefused) -> tuple[str, str]:
    known = _REFUSALS.get(exc.status)
    if known is None:
        return "refused", str(exc)
    kind, why = known
    return kind, f"{url.rstrip('/')}: {why}"
