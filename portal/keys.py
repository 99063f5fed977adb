"""The portal's own Ed25519 key: generated on first start, refused if others can read it.

The key lives in the data directory, made private by :mod:`portal.db.private_files`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol import private_key_from_raw, private_key_raw
from portal.db.private_files import private_dir, refuse_shared
from portal.exceptions import PortalConfigError

__all__ = [
    "CARD_MASTER_FILE",
    "KEY_FILE",
    "SESSION_SECRET_FILE",
    "load_or_create_card_master",
    "load_or_create_key",
    "load_or_create_secret",
]

logger = logging.getLogger(__name__)

KEY_FILE = "portal.key"
SESSION_SECRET_FILE = "session.secret"
# The AES-128 master from which every card's keys are derived (docs/cards.md, decision 0920).
CARD_MASTER_FILE = "card-master.key"


def _write_private(path: Path, data: bytes) -> None:
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_private(path: Path) -> bytes:
    refuse_shared(path)
    return path.read_bytes()


def load_or_create_key(data_dir: Path) -> Ed25519PrivateKey:
    """The portal's signing key in ``data_dir``; created (mode 0600) when missing."""
    private_dir(data_dir)
    path = data_dir / KEY_FILE
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        try:
            _write_private(path, private_key_raw(key).hex().encode("ascii") + b"\n")
            logger.info("generated the portal key %s", path)
            return key
        except FileExistsError:
            pass  # another process made it first: use theirs
    text = _read_private(path).decode("ascii", "replace").strip()
    try:
        return private_key_from_raw(bytes.fromhex(text))
    except ValueError as exc:
        raise PortalConfigError(f"{path}: not a portal key (64 hex characters)") from exc


def load_or_create_secret(data_dir: Path) -> str:
    """The session-cookie signing secret in ``data_dir`` (mode 0600)."""
    path = data_dir / SESSION_SECRET_FILE
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first
            _write_private(path, secrets.token_hex(32).encode("ascii"))
    return _read_private(path).decode("ascii").strip()


def load_or_create_card_master(data_dir: Path) -> bytes:
    """The card master key in ``data_dir`` (16 bytes); created (mode 0600) when missing.

    Refused, like the portal key, when group or others may read it. Never logged: the
    log line names the file only.
    """
    private_dir(data_dir)
    path = data_dir / CARD_MASTER_FILE
    if not path.exists():
        raw = secrets.token_bytes(16)
        try:
            _write_private(path, raw.hex().encode("ascii") + b"\n")
            logger.info("generated the card master key %s", path)
            return raw
        except FileExistsError:
            pass  # another process made it first: use theirs
    text = _read_private(path).decode("ascii", "replace").strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise PortalConfigError(f"{path}: not a card master key (32 hex characters)")
    return raw
