"""What the commands that open the state dir say when it fails: one line each.

``run``, ``upload``, ``export`` and ``ack`` open the device key and the record
buffer. Two failures need a human and a line that tells them what works:
a state dir the disk will not let us write (an SD card that fails turns
read-only) and a device key that is gone (the portal accepts no other key for
this device, so ``qatysu init`` alone cannot help).
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path

from agent.buffer.files import permission_denied
from agent.cli.base import DEFAULT_CONFIG, Exit
from agent.config import AgentConfig
from agent.exceptions import QatysuError

__all__ = ["cli_prefix", "disk_line", "lost_key_hint", "require_key", "state_dir_errors"]

# Errors of the disk itself, as opposed to a file this user may not touch.
_DISK = {
    errno.EROFS: "is read-only (an SD card that fails turns read-only: replace it)",
    errno.EIO: "cannot be read or written (the SD card is failing: replace it)",
    errno.ENOSPC: "is on a full disk (free space, or a larger card)",
}


def cli_prefix(config: AgentConfig) -> str:
    """``qatysu`` with ``--config`` when the config is not the default one (hints work as typed)."""
    path = config.path
    return "qatysu" if path is None or path == DEFAULT_CONFIG else f"qatysu --config {path}"


def lost_key_hint(config: AgentConfig) -> str:
    """What to do when the device key is missing, enrolled or not."""
    qatysu = cli_prefix(config)
    device = config.portal.device_id
    if not device:
        return f"run '{qatysu} init --new-key', then enroll"
    return (
        f"this device can no longer sign records as {device} and the portal accepts no "
        f"other key for it: ask the portal operator for a new enrollment token (and to "
        f"revoke {device}), then run '{qatysu} init --new-key' and "
        f"'{qatysu} enroll --portal URL --token TOKEN'"
    )


def require_key(config: AgentConfig) -> None:
    """Refuse, with the way out, when the device key file is gone (exit 2: systemd does
    not restart into it, a human must act)."""
    path = config.key_path
    if not path.exists() and not path.is_symlink():
        raise Exit(f"{path}: no device key: {lost_key_hint(config)}", 2)


@contextlib.contextmanager
def state_dir_errors(config: AgentConfig, *, debug: bool = False) -> Iterator[None]:
    """Turn an OSError from the disk into one line naming the file (``debug``: the
    traceback instead).

    Our own errors (a full buffer, a key file's mode, a locked buffer) already
    carry their line and pass through.
    """
    state_dir = config.device.state_dir
    try:
        yield
    except QatysuError:
        raise
    except OSError as exc:
        if debug:
            raise
        if isinstance(exc, PermissionError) and _inside(Path(exc.filename or ""), state_dir):
            raise permission_denied(exc, state_dir) from exc
        raise Exit(disk_line(exc, state_dir)) from exc


def disk_line(exc: OSError, state_dir: Path) -> str:
    where = Path(exc.filename) if exc.filename else state_dir
    line = f"{where}: {exc.strerror or exc}"
    why = _DISK.get(exc.errno or 0)
    if why is None or not _inside(where, state_dir):
        return line
    return f"{line}: the state dir {state_dir} {why}"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents
