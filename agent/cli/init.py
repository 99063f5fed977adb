"""``qatysu init --profile NAME``: a commented config, the state dir and the device key."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from agent.cli.base import DEFAULT_CONFIG, Context, Exit, cli
from agent.cli.output import echo_json
from agent.config import load_config
from agent.config.edit import write_preserving_mode
from agent.config.profiles import load_profile, profile_names
from agent.config.template import render_config
from agent.exceptions import QatysuError
from agent.identity import generate_key_file, load_key_file
from agent.protocol import public_key_b64


@cli.command("init")
@click.option(
    "--profile",
    "profile_name",
    required=True,
    metavar="NAME",
    help="Board profile (see 'qatysu profiles').",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where records and the key live (default /var/lib/qatysu).",
)
@click.option(
    "--force", is_flag=True, help="Replace an existing config (its state dir stays by default)."
)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as one JSON object.")
@click.pass_obj
def init_command(
    obj: Context, profile_name: str, state_dir: Path | None, force: bool, as_json: bool
) -> None:
    """Write the config from a board profile, create the state dir and the device key.

    The config (--config, default /etc/qatysu/agent.toml) gets every setting
    of the profile with a comment saying what it means. The device key
    (STATE_DIR/device.key, mode 0600) is generated once: an existing valid key
    is kept even with --force, because the portal knows the device by it.
    Next: 'qatysu config validate', then 'qatysu enroll'.
    """
    if profile_name not in profile_names():
        known = ", ".join(profile_names()) or "none"
        raise Exit(f"--profile: unknown profile {profile_name!r} (known: {known})", 2)
    profile = load_profile(profile_name)
    path = obj.config_path
    if path.exists() and not force:
        raise Exit(f"{path}: a config already exists (use --force to replace it)")
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
