"""``qatysu init --profile NAME``: a commented config, the state dir and the device key."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import click

from agent.cli.base import DEFAULT_CONFIG, Context, Exit, cli
from agent.cli.output import echo_json
from agent.cli.state import cli_prefix
from agent.config import load_config
from agent.config.edit import set_values, write_preserving_mode
from agent.config.profiles import load_profile, profile_names
from agent.config.template import render_config
from agent.exceptions import QatysuError
from agent.identity import generate_key_file, load_key_file
from agent.protocol import public_key_b64


@cli.command("init")
@click.option(
    "--profile",
    "profile_name",
    metavar="NAME",
    help="Board profile (see 'qatysu profiles'); required unless --new-key.",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where records and the key live (default /var/lib/qatysu).",
)
@click.option(
    "--force", is_flag=True, help="Replace an existing config (its state dir stays by default)."
)
@click.option(
    "--new-key",
    is_flag=True,
    help="The device key is lost: make a new one for the existing config, set the old "
    "records aside and clear the enrollment (then enroll with a new token).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as one JSON object.")
@click.pass_obj
def init_command(
    obj: Context,
    profile_name: str | None,
    state_dir: Path | None,
    force: bool,
    new_key: bool,
    as_json: bool,
) -> None:
    """Write the config from a board profile, create the state dir and the device key.

    The config (--config, default /etc/qatysu/agent.toml) gets every setting
    of the profile with a comment saying what it means. The device key
    (STATE_DIR/device.key, mode 0600) is generated once: an existing valid key
    is kept even with --force, because the portal knows the device by it.
    Next: 'qatysu config validate', then 'qatysu enroll'.

    With --new-key (and no profile), for a device whose key file is gone: a
    new key is made, the old buffer (records signed by the lost key) is moved
    aside under the state dir and the enrollment is cleared from the config;
    the portal knows only the lost key, so enroll again with a new token.
    """
    if new_key:
        if profile_name is not None or state_dir is not None or force:
            raise Exit(
                "--new-key keeps the config: it takes no --profile, --state-dir or --force", 2
            )
        _new_key(obj.config_path, as_json)
        return
    if profile_name is None:
        raise Exit("--profile: required (see 'qatysu profiles'), or --new-key for a lost key", 2)
    if profile_name not in profile_names():
        known = ", ".join(profile_names()) or "none"
        raise Exit(f"--profile: unknown profile {profile_name!r} (known: {known})", 2)
    profile = load_profile(profile_name)
    path = obj.config_path
    if path.exists() and not force:
        # Like an id that exists: invalid input (2). After a lost key, --force would make
        # a key the portal does not know: name the command that helps.
        hint = "use --force to replace it"
        with contextlib.suppress(QatysuError):
            existing = load_config(path)
            if not existing.key_path.exists():
                hint = f"its device key is gone: '{cli_prefix(existing)} init --new-key' makes one"
        raise Exit(f"{path}: a config already exists ({hint})", 2)
    if state_dir is None and path.exists():
        # Re-initialising keeps the records and the key where they are.
        with contextlib.suppress(QatysuError):
            state_dir = load_config(path).device.state_dir
    text = render_config(profile, state_dir.absolute() if state_dir else None)
    try:
        write_preserving_mode(path, text)
    except OSError as exc:
        raise Exit(f"{path}: cannot write: {exc.strerror or exc}") from exc
    config = load_config(path)
    try:
        config.device.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise Exit(f"{config.device.state_dir}: cannot create: {exc.strerror or exc}") from exc
    key_path = config.key_path
    created = not key_path.exists()
    key = generate_key_file(key_path) if created else load_key_file(key_path)
    public = public_key_b64(key)
    if as_json:
        echo_json(
            {
                "config": str(path),
                "profile": profile.name,
                "state_dir": str(config.device.state_dir),
                "key": str(key_path),
                "key_created": created,
                "public_key": public,
            }
        )
        return
    click.echo(f"wrote {path} from profile {profile.name}")
    click.echo(f"state dir {config.device.state_dir}")
    click.echo(f"{'created' if created else 'kept existing'} device key {key_path} (mode 0600)")
    click.echo(f"public key {public}")
    for note in profile.notes:
        click.echo(f"note: {note}")
    if profile.boot_config_lines:
        lines = ", ".join(profile.boot_config_lines)
        click.echo(f"boot config needs: {lines} (then reboot; 'qatysu doctor' checks)")
    # The hint must work as typed: name the config when it is not the default one.
    flag = "" if path == DEFAULT_CONFIG else f"--config {path} "
    click.echo(
        f"next: qatysu {flag}config validate; qatysu {flag}enroll --portal URL --token TOKEN"
    )


def _new_key(path: Path, as_json: bool) -> None:
    """A new device key where the old one is gone; the config is kept but unenrolled."""
    from agent.control import daemon_running

    config = load_config(path)
    key_path = config.key_path
    if key_path.exists() or key_path.is_symlink():
        raise Exit(
            f"{key_path}: a device key exists; the portal knows the device by it, so it is "
            "never replaced (move a broken key aside first)",
            2,
        )
    if daemon_running(config.device.control_socket):
        raise Exit("the agent is running: stop it first (sudo systemctl stop qatysu-agent)")
    old = config.portal.device_id or "unenrolled"
    # The config first: a power cut after it leaves an unenrolled device without a key,
    # which this command finishes when run again; never the lost device's id on a new key.
    text, _ = set_values(
        path.read_text(encoding="utf-8"),
        [("portal.device_id", ""), ("portal.center_id", ""), ("portal.public_key", "")],
        path,
    )
    buffer = config.device.state_dir / "buffer"
    aside: Path | None = None
    try:
        write_preserving_mode(path, text)
        if buffer.exists():
            # Its records are signed by the lost key: the new device starts its own
            # chain, and these stay as they are, for the city to decide on.
            aside = _free_name(config.device.state_dir / f"buffer.lost-key.{old}")
            buffer.rename(aside)
        key = generate_key_file(key_path)
        if os.geteuid() == 0:
            # Run with sudo: the agent's own user must read the key, as install.sh leaves it.
            owner = config.device.state_dir.stat()
            os.chown(key_path, owner.st_uid, owner.st_gid)
    except OSError as exc:
        raise Exit(f"{exc.filename or key_path}: {exc.strerror or exc}") from exc
    public = public_key_b64(key)
    flag = "" if path == DEFAULT_CONFIG else f"--config {path} "
    if as_json:
        echo_json(
            {
                "config": str(path),
                "key": str(key_path),
                "public_key": public,
                "old_device_id": config.portal.device_id,
                "old_buffer": str(aside) if aside else None,
            }
        )
        return
    click.echo(f"created device key {key_path} (mode 0600)")
    click.echo(f"public key {public}")
    if aside is not None:
        click.echo(f"records of {old} (signed by the lost key) moved to {aside}")
    click.echo(f"cleared the enrollment in {path}")
    click.echo(f"next: qatysu {flag}enroll --portal URL --token TOKEN (a new token)")


def _free_name(path: Path) -> Path:
    n, candidate = 1, path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate
