"""``qatysu station ...``: the city's personalisation station (docs/cards.md).

Run on a city-owned Pi at the office with a reader, never at a club. ``enroll``
binds a station grant to a fresh station key and pins the portal's key;
``inspect`` says whether the card on the reader can be personalised;
``personalise`` makes one card and activates it. Card keys are held in memory for
that one card and never printed, logged or written.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from agent.cli.base import Exit, cli
from agent.cli.output import echo_json
from agent.config import AgentConfig, load_config
from agent.exceptions import CardNotBlank, ConfigError, PortalRefused, ReaderError
from agent.protocol import public_key_b64, public_key_from_b64
from agent.protocol.errors import ProtocolError
from agent.protocol.ntag424_ev2 import CardError
from agent.station.channels import DEFAULT_READER, open_reader
from agent.station.client import StationClient
from agent.station.flow import make_card
from agent.station.hygiene import harden_process
from agent.station.personalise import probe
from agent.station.store import (
    Enrollment,
    adopt_pending_key,
    load_enrollment,
    load_station_key,
    pending_station_key,
    save_enrollment,
)

DEFAULT_STATE_DIR = Path("/var/lib/qatysu-station")
_STATES = {
    "blank": "blank: factory keys and settings, ready to personalise",
    "interrupted": "interrupted: an earlier personalisation stopped; personalise finishes it",
    "locked": "locked: key 0 is not the factory key (a Qatysu card, or another system's)",
}

reader_option = click.option(
    "--reader",
    default=DEFAULT_READER,
    show_default=True,
    help="The station reader the card is on (mfrc522: the RC522 on SPI, see 'station --help').",
)
timeout_option = click.option(
    "--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for a card."
)


@cli.group("station")
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="QATYSU_STATION_DIR",
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="The station's key and enrollment (env QATYSU_STATION_DIR).",
)
@click.pass_context
def station(ctx: click.Context, state_dir: Path) -> None:
    """The city's card personalisation station (never at a club).

    The reader (--reader mfrc522, the default) is an RC522 board on the Pi's SPI,
    wired as on a door: SPI 0.0 with its reset line on GPIO25. Another wiring is
    read from the first [[readers]] entry with driver = "mfrc522" (spi_bus,
    spi_device, reset_pin) of the agent config, when one is given with
    'qatysu --config FILE station ...' or QATYSU_CONFIG.
    """
    ctx.meta["station_dir"] = state_dir


def _state_dir() -> Path:
    path: Path = click.get_current_context().meta["station_dir"]
    return path


@station.command("enroll")
@click.option("--portal", "url", required=True, metavar="URL", help="Portal base URL (https://).")
@click.option("--grant", required=True, help="The station grant from 'qatysu-portal cards issue'.")
@click.option("--insecure", is_flag=True, help="Allow a plain http:// portal (a lab only).")
@click.option(
    "--ca-file",
    default="",
    metavar="FILE",
    help="A city CA's certificates (PEM) the portal's certificate may chain to; kept.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def enroll_command(url: str, grant: str, insecure: bool, ca_file: str, as_json: bool) -> None:
    """Bind the grant to a new station key and pin the portal's key.

    A new key is made for each grant and replaces the previous one once the
    portal has bound it (a failed attempt leaves the old enrollment as it was;
    trying again reuses the new key). The grant is then spent: no other key can
    use it, and it is never sent again.
    """
    state_dir = _state_dir()
    key = pending_station_key(state_dir)
    try:
        with StationClient(url, key, insecure=insecure, ca_file=ca_file) as client:
            answer = client.enroll(grant, public_key_b64(key))
    except ConfigError as exc:  # the URL or the CA file: the client's own checks
        raise Exit(f"--portal: {exc}", 2) from exc
    except PortalRefused as exc:
        hint = {401: "unknown or expired grant", 410: "grant used by another station"}
        raise Exit(f"{exc}" + (f" ({hint[exc.status]})" if exc.status in hint else "")) from exc
    try:
        public_key_from_b64(answer.get("portal_public_key"))
        enrollment = Enrollment(
            portal_url=url.rstrip("/"),
            portal_public_key=str(answer["portal_public_key"]),
            station=str(answer["station"]),
            url=str(answer["url"]),
            expires_ms=int(answer["expires_ms"]),
            insecure=insecure,
            ca_file=ca_file,
        )
    except (KeyError, TypeError, ValueError, ProtocolError) as exc:
        raise Exit(f"{url}: the enrollment answer is not usable: {exc}") from exc
    # The enrollment first, the key last: a power cut between the two leaves the pending
    # key in place, and enrolling again presents it (the portal answers the same key
    # again); the other order could lose the key the grant is bound to.
    save_enrollment(state_dir, enrollment)
    adopt_pending_key(state_dir)
    summary = {
        "station": enrollment.station,
        "station_key": public_key_b64(key),
        "portal_public_key": enrollment.portal_public_key,
        "cards": answer.get("count"),
        "used": answer.get("used"),
        "expires_ms": enrollment.expires_ms,
    }
    if as_json:
        echo_json(summary)
    else:
        click.echo(
            f"station {enrollment.station} enrolled with {url}: {summary['used']} of "
            f"{summary['cards']} cards used; portal key pinned {enrollment.portal_public_key}"
        )


def _agent_config() -> AgentConfig | None:
    """The agent config if one was named (option or environment), else None: defaults."""
    root = click.get_current_context().find_root()
    if root.get_parameter_source("config_path") in (None, ParameterSource.DEFAULT):
        return None
    path: Path = root.params["config_path"]
    return load_config(path)


def _card_gone(exc: ReaderError) -> Exit:
    return Exit(f"the card left the reader ({exc}): put it back and run the command again")


@station.command("inspect")
@reader_option
@timeout_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def inspect_command(reader: str, timeout: float, as_json: bool) -> int:
    """Say whether the card on the reader can be personalised (exit 0) or not (exit 1)."""
    url = load_enrollment(_state_dir()).url
    config = _agent_config()
    try:
        with open_reader(reader, timeout, config) as channel:
            uid = channel.uid.hex().upper()
            try:
                state = probe(channel, url)
            except (CardNotBlank, CardError) as exc:
                raise Exit(f"card {uid}: {exc}") from exc
    except ReaderError as exc:
        raise _card_gone(exc) from exc
    if as_json:
        echo_json({"uid": uid, "state": state})
    else:
        click.echo(f"card {uid}: {_STATES[state]}")
    return 0 if state != "locked" else 1


@station.command("personalise")
@reader_option
@timeout_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def personalise_command(reader: str, timeout: float, as_json: bool) -> None:
    """Personalise the card on the reader and activate it at the portal.

    Refuses a card that is not blank. A card cut off half way (taken away, power
    lost) is finished by running the command again with the same card, on this
    station, before the grant expires.
    """
    harden_process()
    state_dir = _state_dir()
    enrollment = load_enrollment(state_dir)
    key = load_station_key(state_dir)
    try:
        pinned = public_key_from_b64(enrollment.portal_public_key)
    except ProtocolError as exc:
        raise ConfigError(f"{state_dir}: portal_public_key: {exc}") from exc
    config = _agent_config()
    client = StationClient(
        enrollment.portal_url, key, insecure=enrollment.insecure, ca_file=enrollment.ca_file
    )
    try:
        with client, open_reader(reader, timeout, config) as channel:
            made = make_card(channel, client, pinned, enrollment.url)
    except ReaderError as exc:
        raise _card_gone(exc) from exc
    if as_json:
        echo_json(
            {"uid": made.uid, "state": "active", "counter": made.counter, "resumed": made.resumed}
        )
    else:
        finished = " (an interrupted personalisation finished)" if made.resumed else ""
        click.echo(f"card {made.uid} personalised and active, counter {made.counter}{finished}")
