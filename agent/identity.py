"""The device's Ed25519 key on disk: created 0600, refused when readable by others."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.durable import replace_file
from agent.exceptions import KeyFileError
from agent.protocol.keys import private_key_from_raw, private_key_raw

__all__ = ["generate_key_file", "load_key_file"]


def generate_key_file(path: Path, *, force: bool = False) -> Ed25519PrivateKey:
    """Create a new key at ``path`` (mode 0600, written then fsync'd); never overwrite
    an existing one unless ``force``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not force:
        raise KeyFileError(f"{path}: a device key already exists (use --force to replace it)")
    key = Ed25519PrivateKey.generate()
    # A fresh temporary file created with mode 0600 (O_EXCL): the key is never on
    # disk with wider permissions, not even for an instant.
    data = private_key_raw(key).hex().encode("ascii") + b"\n"
    replace_file(path, data, mode=0o600, tmp=path.with_name(path.name + ".tmp"))
    return key


def load_key_file(path: Path) -> Ed25519PrivateKey:
    """Load the device key, refusing a file that group or others can read."""
    try:
        st = path.stat()
        text = path.read_text("ascii").strip()
    except FileNotFoundError as exc:
        raise KeyFileError(
            f"{path}: no device key (a lost key: 'qatysu init --new-key', then enroll again)"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read device key: {exc}") from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: device key is mode {stat.S_IMODE(st.st_mode):04o}; run 'chmod 600 {path}'"
        )
    try:
        return private_key_from_raw(bytes.fromhex(text))
    except ValueError as exc:
        raise KeyFileError(f"{path}: not a device key (expected 64 hex characters)") from exc
