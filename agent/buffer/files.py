"""The buffer's folder: where each file lives, the lock, and the careful file moves."""

from __future__ import annotations

import errno
import fcntl
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from agent.durable import fsync_dir, keep_owner, make_dirs, write_synced
from agent.exceptions import (
    BufferFullError,
    BufferLockedError,
    BufferPermissionError,
    RecordBufferError,
)

__all__ = ["Layout", "Lock", "permission_denied", "write_file_durably"]

SEGMENT_GLOB = "seg-*.log"


@dataclass(frozen=True)
class Layout:
    """``<state_dir>/buffer/``: segments/, quarantine/, state.json, lock."""

    root: Path

    @classmethod
    def under(cls, state_dir: Path) -> Layout:
        return cls(Path(state_dir) / "buffer")

    @property
    def segments(self) -> Path:
        return self.root / "segments"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    def segment(self, first: int) -> Path:
        return self.segments / f"seg-{first:012d}.log"

    def segment_files(self) -> list[tuple[int, Path]]:
        found: list[tuple[int, Path]] = []
        if not self.segments.is_dir():
            return found
        for path in self.segments.glob(SEGMENT_GLOB):
            try:
                found.append((int(path.stem[4:]), path))
            except ValueError:
                continue  # not ours; left alone
        return sorted(found)

    def create(self) -> None:
        for path in (self.root, self.segments, self.quarantine):
            make_dirs(path)


class Lock:
    """An ``flock`` on ``lock``: exclusive for the one writer, shared for readers."""

    def __init__(self, path: Path, *, shared: bool = False) -> None:
        self.path = path
        self.shared = shared
        self._fd: int | None = None

    def acquire(self) -> None:
        flags = os.O_RDONLY if self.shared else os.O_RDWR | os.O_CREAT
        fd = os.open(self.path, flags, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            if self.shared:
                raise BufferLockedError(
                    f"{self.path}: the buffer is open for writing by a running agent{who}; "
                    "ask it over the control socket instead"
                ) from None
            raise BufferLockedError(
                f"{self.path}: the buffer is in use by another process{who}; "
                "only one agent may write it"
            ) from None
        if not self.shared:
            try:
                keep_owner(fd, self.path.parent)  # made by root: still the agent's to open
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except OSError:
                os.close(fd)
                raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""


def write_file_durably(path: Path, data: bytes) -> None:
    """Write a new file's bytes and fsync them (the caller renames and fsyncs the folder);
    failures become the buffer's errors (:class:`BufferFullError` when the disk is full)."""
    try:
        write_synced(path, data)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BufferFullError(exc.errno, f"{path}: disk full ({exc.strerror})") from exc
        raise RecordBufferError(f"{path}: cannot write: {exc}") from exc


def permission_denied(exc: PermissionError, state_dir: Path) -> BufferPermissionError:
    """One line naming the file and the fix, for a state dir this user may not use
    (typically a file root left behind; systemd would restart into it forever)."""
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = str(os.geteuid())
    return BufferPermissionError(
        f"{exc.filename or state_dir}: permission denied for user {user}; the agent's "
        f"files must be its own: run 'sudo chown -R {user}: {state_dir}', then start it again"
    )


def move_to_quarantine(path: Path, quarantine: Path, tag: str) -> Path:
    """Move ``path`` into quarantine/ under a name that never overwrites earlier evidence."""
    target = quarantine / f"{path.name}.{tag}"
    n = 1
    while target.exists():
        n += 1
        target = quarantine / f"{path.name}.{tag}.{n}"
    os.rename(path, target)
    fsync_dir(quarantine)
    fsync_dir(path.parent)
    return target


def unique_path(path: Path) -> Path:
    n, target = 1, path
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{n}")
    return target
