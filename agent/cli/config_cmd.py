"""``qatysu config show|validate|set``: inspect, check and change the agent config."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click
import tomlkit

from agent.cli.base import Context, Exit, cli
from agent.cli.output import busy, echo_json
from agent.config import AgentConfig, load_config
from agent.config.check import check_config
from agent.config.edit import set_values, write_preserving_mode
from agent.exceptions import ConfigError


def config_as_dict(config: AgentConfig) -> dict[str, Any]:
    """The effective config (defaults filled in), TOML-shaped: no None, paths as text."""

    def clean(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {
                f.name: clean(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if getattr(value, f.name) is not None
            }
        if isinstance(value, tuple | list):
            return [clean(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    data = clean(config)
    data.pop("path", None)
    return {k: v for k, v in data.items() if v != []}


def url_problem(url: str, timeout_s: float = 3.0) -> str | None:
    """None when ``GET {url}/api/v1/health`` answers 200, else why not (one line)."""
    import httpx

    try:
        answer = httpx.get(url.rstrip("/") + "/api/v1/health", timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    if answer.status_code != 200:
        return f"health check answered HTTP {answer.status_code}"
    return None


@cli.group("config")
def config_group() -> None:
    """Inspect, check and change the agent config (--config)."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the config as one JSON object.")
@click.pass_obj
def show_command(obj: Context, as_json: bool) -> None:
    """Print the effective config: the file's values with every default filled in."""
    data = config_as_dict(load_config(obj.config_path))
    if as_json:
        echo_json(data)
    else:
        click.echo(f"# {obj.config_path} (defaults filled in)")
        click.echo(tomlkit.dumps(data).rstrip())


@config_group.command("validate")
@click.option("--offline", is_flag=True, help="Do not contact the portal or look for ports.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as one JSON object.")
@click.pass_obj
def validate_command(obj: Context, offline: bool, as_json: bool) -> int:
    """Check the config: types, pins, duplicates, serial ports, the portal URL.

    Errors (exit 2): an unknown key (with the nearest valid one), a wrong
    type, a pin outside BCM 0..27 or on the reader's bus, two devices on one
    pin, a name used twice, a driver without its settings. Warnings (exit 0):
    a serial port that does not exist, a portal that does not answer, plain
    http.
    """
    path = obj.config_path
    try:
        config = load_config(path)
    except ConfigError as exc:
        if as_json:
            echo_json({"file": str(path), "valid": False, "errors": [str(exc)], "warnings": []})
            return 2
        raise
    with busy(f"asking {config.portal.url or 'the portal'}..."):
        findings = check_config(
            config,
            port_exists=None if offline else (lambda port: Path(port).exists()),
            url_problem=None if offline else url_problem,
        )
    errors = [f for f in findings if f.level == "error"]
    if as_json:
        echo_json(
            {
                "file": str(path),
                "valid": not errors,
                "errors": [f"{f.key}: {f.message}" for f in errors],
                "warnings": [f"{f.key}: {f.message}" for f in findings if f.level == "warning"],
            }
        )
    else:
        for finding in findings:
            click.echo(f"qatysu: {finding.line(str(path))}", err=True)
        if not errors:
            warned = len(findings)
            click.echo(f"{path}: valid" + (f" ({warned} warning(s))" if warned else ""))
    return 2 if errors else 0


# ignore_unknown_options: a negative VALUE ("-5") is a value to check, not an option.
@config_group.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("key")
@click.argument("value")
@click.argument("more", nargs=-1)
@click.pass_obj
def set_command(obj: Context, key: str, value: str, more: tuple[str, ...]) -> None:
    """Set KEY to VALUE (and more KEY VALUE pairs), keeping the file's comments and mode.

    KEY is a dotted path with list indexes: portal.url, heartbeat.interval_s,
    readers.0.port, doors.1.pin. VALUE is converted to the key's type
    (true/false for switches); 'none' removes the key so its default applies.
    Several pairs are applied together and checked as one change: another reader
    driver with the keys it needs ('readers.0.driver rdm6300 readers.0.port
    /dev/serial0'); keys only the old driver had are removed.
    The whole file is checked before it is written; the daemon picks the
    change up when restarted (systemctl restart qatysu-agent).
    """
    path = obj.config_path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise Exit(f"{path}: no config file (run 'qatysu init --profile NAME')", 2) from exc
    except OSError as exc:
        raise Exit(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        if len(more) % 2:
            raise Exit(f"{path}: {more[-1]}: a KEY without a VALUE; not changed", 2)
        pairs = [(key, value), *zip(more[::2], more[1::2], strict=True)]
        dropped: list[str] = []
        new_text, new_config = set_values(text, pairs, path, dropped=dropped)
    except ConfigError as exc:
        message = str(exc)
        raise Exit(message if message.startswith(str(path)) else f"{path}: {message}", 2) from exc
    # Refuse a value that adds an error (a pin clash, say); errors the file
    # already had do not block fixing another one.
    try:
        before = {f.line("") for f in check_config(load_config(path)) if f.level == "error"}
    except ConfigError:
        before = set()
    for finding in check_config(new_config):
        if finding.level == "error" and finding.line("") not in before:
            hint = ""
            if any(k.endswith(".driver") for k, _ in pairs) and len(pairs) == 1:
                hint = " (give the new driver's keys in the same command: KEY VALUE pairs)"
            raise Exit(f"{path}: {finding.key}: {finding.message}; not changed{hint}", 2)
    try:
        write_preserving_mode(path, new_text)
    except OSError as exc:
        raise Exit(f"{path}: cannot write: {exc.strerror or exc}") from exc
    for k, v in pairs:
        click.echo(f"{path}: {k} = {v}")
    if dropped:
        click.echo(f"{path}: removed {', '.join(dropped)} (not keys of the new driver)")
