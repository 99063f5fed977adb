"""Small files written so that a power cut leaves the old bytes or the new, never a mix.

The one home for "write a file durably" and "fsync a folder" on the device:
the buffer's segments and ``state.json``, the device key, the config hash,
bundles and their copy to a USB stick all go through here. Only the standard
library; errors are plain :class:`OSError` (callers say what the file was).

A file made here by root in a folder someone else owns takes the folder's owner
and group (:func:`keep_owner`): ``sudo qatysu ack`` with the agent stopped must
not leave the service user a ``state.json`` it cannot read.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["fsync_dir", "keep_owner", "make_dirs", "replace_file", "write_synced"]


def fsync_dir(path: Path) -> None:
    """Make the folder's entries (a new, renamed or removed file) survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def keep_owner(fd: int, folder: Path) -> None:
    """Give the new file open at ``fd`` the owner and group of ``folder`` when running
    as root and they differ (a no-op for everyone else, who cannot chown anyway)."""
    if os.geteuid() != 0:
        return
    want = os.stat(folder)
    have = os.fstat(fd)
    if (have.st_uid, have.st_gid) != (want.st_uid, want.st_gid):
        os.fchown(fd, want.st_uid, want.st_gid)


def make_dirs(path: Path, mode: int = 0o777) -> None:
    """``mkdir -p`` whose new folders take their parent's owner (see :func:`keep_owner`)
    and are in their parent for good (the parent is fsync'd) before this returns."""
    if path.is_dir():
        return
    make_dirs(path.parent, mode)
    try:
        path.mkdir(mode)
    except FileExistsError:
        if path.is_dir():
            return  # made meanwhile
        raise
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        keep_owner(fd, path.parent)
    finally:
        os.close(fd)
    fsync_dir(path.parent)  # else a power cut can lose the folder and all it holds


def write_synced(
    path: Path, data: bytes | Iterable[bytes], *, mode: int = 0o644, exclusive: bool = False
) -> None:
    """Write ``data`` (bytes, or chunks of it) to ``path`` and fsync it.

    ``exclusive`` refuses an existing file (``O_EXCL``): the mode then holds
    from the first byte. On any failure the file is removed and OSError raised;
    a short write counts as a full disk. The caller renames and fsyncs the folder.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, mode)  # a refused O_EXCL leaves the other file alone
    try:
        try:
            keep_owner(fd, path.parent)
            for chunk in [data] if isinstance(data, bytes) else data:
                if os.write(fd, chunk) != len(chunk):
                    raise OSError(errno.ENOSPC, "short write")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def replace_file(
    path: Path, data: bytes | Iterable[bytes], *, mode: int = 0o644, tmp: Path | None = None
) -> None:
    """Give ``path`` the content ``data``, whole or not at all.

    Temporary file (default ``.<name>.tmp`` beside it, created afresh so a stale
    one's wider mode never carries over), fsync, ``os.replace``, fsync of the
    folder. On failure the temporary file is gone, ``path`` is as it was, and
    OSError is raised.
    """
    tmp = tmp or path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    write_synced(tmp, data, mode=mode, exclusive=True)
    try:
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
