"""The portal's data is private: the data dir 0700, its files 0600, whatever the umask.

The data directory holds the portal key and, on SQLite, the database
(children's names and badge UIDs). The portal refuses to start, with one line
naming the ``chmod`` to run, when one of them is open to group or others.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from portal.exceptions import PortalConfigError

__all__ = ["create_private", "private_dir", "refuse_shared"]


def refuse_shared(path: Path) -> None:
    """Raise :class:`PortalConfigError` (one line, with the chmod) if others may read ``path``."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        private, what = (700, "open to") if stat.S_ISDIR(mode) else (600, "readable by")
        raise PortalConfigError(
            f"{path}: {what} group or others (mode {stat.S_IMODE(mode):o}); "
            f"run chmod {private} {path}"
        )


def private_dir(path: Path) -> None:
    """Make ``path`` (mode 0700) if missing; refuse one that holds data and others may read.

    An empty directory open to others (made a moment ago under umask 022) has
    leaked nothing yet: it is tightened to 0700 instead.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & 0o077 and not any(path.iterdir()):
        path.chmod(0o700)
    refuse_shared(path)


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists; refuse it if others may read it."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    refuse_shared(path)
