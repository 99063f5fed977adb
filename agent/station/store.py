"""What the station keeps on disk: its own signing key and the enrollment. No card key.

``station.key``: the station's Ed25519 key (hex, mode 0600, refused when group or
others can read it), made at ``qatysu station enroll`` (as ``station.key.pending``
until the portal binds it). ``station.json``: the portal's URL, its pinned public
key, the grant's short id, card URL and expiry. Card keys are never written here or
anywhere else: they live in memory for one card (:mod:`agent.station.flow`).
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.durable import fsync_dir, replace_file
from agent.exceptions import ConfigError, KeyFileError
from agent.protocol.keys import private_key_from_raw, private_key_raw

__all__ = [
    "KEY_FILE",
    "STATE_FILE",
    "Enrollment",
    "adopt_pending_key",
    "load_enrollment",
    "load_station_key",
    "pending_station_key",
    "save_enrollment",
]

KEY_FILE = "station.key"
PENDING_KEY_FILE = "station.key.pending"
STATE_FILE = "station.json"


@dataclass(frozen=True, slots=True)
class Enrollment:
    portal_url: str
    portal_public_key: str  # pinned at enrollment: every sealed bundle must verify with it
    station: str  # the grant's short id, as ``qatysu-portal cards stations`` lists it
    url: str  # the base URL written into each card's NDEF file
    expires_ms: int
    insecure: bool = False  # plain http allowed (a lab portal)
    ca_file: str = ""  # a city CA the portal's certificate may chain to


def _private_dir(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)


def pending_station_key(state_dir: Path) -> Ed25519PrivateKey:
    """The key an enrollment in progress presents: made once, reused on a retry.

    A lost answer does not lose the key the portal may have bound already; the
    station's current key stays in force until :func:`adopt_pending_key`.
    """
    _private_dir(state_dir)
    path = state_dir / PENDING_KEY_FILE
    if path.exists():
        return load_station_key(state_dir, PENDING_KEY_FILE)
    key = Ed25519PrivateKey.generate()
    data = private_key_raw(key).hex().encode("ascii") + b"\n"
    replace_file(path, data, mode=0o600, tmp=path.with_name(path.name + ".tmp"))
    return key


def adopt_pending_key(state_dir: Path) -> None:
    """The pending key becomes the station key (the portal bound it)."""
    os.replace(state_dir / PENDING_KEY_FILE, state_dir / KEY_FILE)
    fsync_dir(state_dir)  # the rename itself survives a power cut


def load_station_key(state_dir: Path, name: str = KEY_FILE) -> Ed25519PrivateKey:
    path = state_dir / name
    try:
        mode = path.stat().st_mode
        text = path.read_text("ascii").strip()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no station key (run 'qatysu station enroll')") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read the station key: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: station key is mode {stat.S_IMODE(mode):04o}; run 'chmod 600 {path}'"
        )
    try:
        return private_key_from_raw(bytes.fromhex(text))
    except ValueError:
        raise KeyFileError(f"{path}: not a station key (expected 64 hex characters)") from None


def save_enrollment(state_dir: Path, enrollment: Enrollment) -> None:
    _private_dir(state_dir)
    path = state_dir / STATE_FILE
    data = json.dumps(asdict(enrollment), indent=2, sort_keys=True).encode("utf-8") + b"\n"
    replace_file(path, data, mode=0o600, tmp=path.with_name(path.name + ".tmp"))


def load_enrollment(state_dir: Path) -> Enrollment:
    path = state_dir / STATE_FILE
    try:
        value = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: this station is not enrolled (run 'qatysu station enroll')"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the enrollment: {exc}") from None
    try:
        return Enrollment(**value)
    except TypeError:
        raise ConfigError(f"{path}: not a station enrollment file") from None
